#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a circle (issue 16's rule: a
newcomer reads a crate's files in an order).

Reads `crate::`, `super::` and `self::` paths outside comments and tests, and names brought in
by `use` that are modules (`use crate::commands;` then `commands::buffer::run` is an arrow to
`commands::buffer`). A child using its parent is not an arrow (`super::Item` is normal); a
parent using its child is, so a circle through a parent module is seen: `cli` -> `commands` ->
`commands::buffer` -> `cli`, when `commands` or `cli` reaches into `commands::buffer`.

    python3 scripts/module-cycles.py              # the workspace's crates
    python3 scripts/module-cycles.py --self-test  # made circles it must find, and none it must not
"""
import os
import re
import sys
import tempfile
from collections import defaultdict

CRATES = ['buffer/src', 'sim/src', 'policy/src', 'curriculum/src', 'src']
PATH = re.compile(r'\b(crate|super|self)((?:::\w+)+)')
USE = re.compile(r'^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);', re.M)


def modname(crate_src, path):
    rel = os.path.relpath(path, crate_src)[:-3]
    parts = rel.split('/')
    if parts[-1] in ('mod', 'lib', 'main'):
        parts = parts[:-1]
    return '::'.join(parts) or 'crate'


def code_of(path):
    """The file without its tests and line comments."""
    src = open(path).read().split('#[cfg(test)]')[0]
    return '\n'.join(l for l in src.split('\n') if not l.lstrip().startswith('//'))


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e'] (aliases `as x` dropped)."""
    tree = re.sub(r'\s+', '', tree)
    m = re.match(r'^(.*?)::\{(.*)\}$', tree)
    if not m:
        return [re.sub(r'as\w+$', '', tree) if 'as' not in tree else tree.split('as')[0]]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ''
    for ch in inner:
        if ch == ',' and depth == 0:
            parts.append(cur)
            cur = ''
            continue
        depth += ch == '{'
        depth -= ch == '}'
        cur += ch
    parts.append(cur)
    out = []
    for p in filter(None, parts):
        for e in expand_use(p):
            out.append(prefix if e == 'self' else prefix + '::' + e)
    return out


def absolute(m, kind, rest):
    """The module path a `crate::`/`super::`/`self::` path starts from, with its rest."""
    base = m.split('::') if m != 'crate' else []
    if kind == 'crate':
        base = []
    elif kind == 'super':
        base = base[:-1]
    return base + rest


def graph(crate):
    files = [os.path.join(d, f) for d, _, fs in os.walk(crate) for f in fs if f.endswith('.rs')]
    mods = {modname(crate, f): f for f in files}

    def target(cand):
        for k in range(len(cand), 0, -1):
            name = '::'.join(cand[:k])
            if name in mods:
                return name
        return None

    g = defaultdict(set)
    for m, f in mods.items():
        src = code_of(f)
        refs = []
        for mm in PATH.finditer(src):
            refs.append(absolute(m, mm.group(1), mm.group(2).strip(':').split('::')))
        # names `use` brings in that are modules, and where their paths lead
        aliases = {}
        for um in USE.finditer(src):
            for path in expand_use(um.group(1)):
                parts = path.split('::')
                if parts[0] not in ('crate', 'super', 'self'):
                    continue
                full = absolute(m, parts[0], parts[1:])
                if '::'.join(full) in mods and full:
                    aliases[full[-1]] = full
        # child modules are named by their own name in the parent (`mod routes;` then `routes::f`)
        for cm in re.finditer(r'^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;', src, re.M):
            own = m.split('::') if m != 'crate' else []
            aliases.setdefault(cm.group(1), own + [cm.group(1)])
        for alias, full in aliases.items():
            for mm in re.finditer(r'(?<![:\w])' + alias + r'((?:::\w+)+)', src):
                refs.append(full + mm.group(1).strip(':').split('::'))
        for cand in refs:
            name = target(cand)
            if name is None or name == m:
                continue
            # a child using its parent (or any ancestor) is normal
            if m.startswith(name + '::') or name == 'crate':
                continue
            g[m].add(name)
    return mods, g


def cycles(crate):
    mods, g = graph(crate)
    seen, stack, onstack, found = set(), [], set(), set()

    def dfs(u):
        seen.add(u)
        stack.append(u)
        onstack.add(u)
        for v in sorted(g[u]):
            if v in onstack:
                found.add(tuple(sorted(stack[stack.index(v):])))
            elif v not in seen:
                dfs(v)
        stack.pop()
        onstack.discard(u)

    for m in sorted(mods):
        if m not in seen:
            dfs(m)
    return sorted(found)


def self_test():
    """Made crates: each must give exactly the circles named."""
    cases = {
        # the circle issue 30 found: cli reaches commands::buffer through `use crate::commands;`
        'through a parent': ({
            'lib.rs': 'pub mod cli;\npub mod commands;\n',
            'cli.rs': 'use crate::commands;\npub struct BufferCmd;\npub fn run() { commands::buffer::run(); }\n',
            'commands/mod.rs': 'pub mod buffer;\n',
            'commands/buffer.rs': 'use crate::cli::BufferCmd;\npub fn run() {}\n',
        }, [('cli', 'commands::buffer')]),
        # a parent whose own code uses a child that uses an outsider that uses the parent
        'parent using its child': ({
            'lib.rs': 'pub mod serve;\npub mod x;\n',
            'serve/mod.rs': 'pub mod routes;\npub struct Config;\npub fn go() { routes::route(); }\n',
            'serve/routes.rs': 'pub fn route() { crate::x::f(); }\n',
            'x.rs': 'pub fn f() { let _ = crate::serve::Config; }\n',
        }, [('serve', 'serve::routes', 'x')]),
        'direct': ({
            'lib.rs': 'pub mod a;\npub mod b;\n',
            'a.rs': 'use crate::b::B;\npub struct A;\n',
            'b.rs': 'use crate::a::A;\npub struct B;\n',
        }, [('a', 'b')]),
        # a child using its parent's items, siblings in one direction, tests ignored: no circle
        'none': ({
            'lib.rs': 'pub mod native;\n',
            'native/mod.rs': 'mod rule;\nmod stages;\npub struct Model;\n',
            'native/rule.rs': 'use super::Model;\npub struct Rule;\n',
            'native/stages.rs': 'use super::rule::Rule;\nuse super::Model;\n',
            'other.rs': '',
        }, []),
        'tests ignored': ({
            'lib.rs': 'pub mod a;\npub mod b;\n',
            'a.rs': 'use crate::b::B;\npub struct A;\n',
            'b.rs': 'pub struct B;\n#[cfg(test)]\nmod tests { use crate::a::A; }\n',
        }, []),
    }
    ok = True
    for name, (files, want) in cases.items():
        with tempfile.TemporaryDirectory() as d:
            for rel, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(d, rel)), exist_ok=True)
                open(os.path.join(d, rel), 'w').write(text)
            got = cycles(d)
        status = 'ok' if got == want else 'FAILED'
        ok = ok and got == want
        print(f'self-test {name}: {status} (circles {got}, expected {want})')
    return ok


def main():
    if sys.argv[1:] == ['--self-test']:
        sys.exit(0 if self_test() else 1)
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
    found = False
    for crate in CRATES:
        c = cycles(crate)
        print(crate, 'cycles:', c if c else 'none')
        found = found or bool(c)
    sys.exit(1 if found else 0)


if __name__ == '__main__':
    main()
