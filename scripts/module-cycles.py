#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a circle (issue 16's rule: a
newcomer reads a crate's files in an order). Reads `crate::` and `super::` paths outside
comments and tests; a child using its parent (or the reverse) is not a circle.

    python3 scripts/module-cycles.py"""
import re,os,sys
from collections import defaultdict
def modname(crate_src, path):
    rel=os.path.relpath(path, crate_src)[:-3]
    parts=rel.split('/')
    if parts[-1] in ('mod','lib','main'): parts=parts[:-1]
    return '::'.join(parts) or 'crate'
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
found = False
for crate in ['buffer/src','sim/src','policy/src','curriculum/src','src']:
    files=[os.path.join(d,f) for d,_,fs in os.walk(crate) for f in fs if f.endswith('.rs')]
    mods={modname(crate,f):f for f in files}
    g=defaultdict(set)
    for m,f in mods.items():
        src=open(f).read()
        src=src.split('#[cfg(test)]')[0]
        src='\n'.join(l for l in src.split('\n') if not l.lstrip().startswith('//'))
        # resolve crate:: and super:: paths
        for mm in re.finditer(r'\b(crate|super)((?:::\w+)+)', src):
            kind, path = mm.group(1), mm.group(2).strip(':').split('::')
            if kind=='crate': base=[]
            else:
                base=m.split('::') if m!='crate' else []
                # super from a file module: parent of this module
                base=base[:-1]
            cand=base+path
            # longest prefix that is a module
            for k in range(len(cand),0,-1):
                name='::'.join(cand[:k])
                if name in mods and name!=m:
                    # ignore parent<->child relations (a child using its parent is normal)
                    if not (name.startswith(m+'::') or m.startswith(name+'::')):
                        g[m].add(name)
                    break
    # find cycles via DFS
    seen=set(); stack=[]; onstack=set(); cycles=set()
    def dfs(u):
        seen.add(u); stack.append(u); onstack.add(u)
        for v in g[u]:
            if v in onstack:
                cyc=stack[stack.index(v):]
                cycles.add(tuple(sorted(cyc)))
            elif v not in seen: dfs(v)
        stack.pop(); onstack.discard(u)
    for m in list(mods): 
        if m not in seen: dfs(m)
    print(crate, 'cycles:', sorted(cycles) if cycles else 'none')
    found = found or bool(cycles)
sys.exit(1 if found else 0)
