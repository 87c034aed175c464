"""Drives `dreamgym serve` with the real OpenEnv client (openenv-core 0.3) for tests/serve.rs.

Each mode checks what it can in Python (exit status 1 with a message on failure) and prints JSON on
stdout for the Rust test to compare against the same episodes played in-process:

  play        episodes with a fixed action rule, through the sync or the async client
  concurrent  N async clients at once, each playing whole episodes
  capacity    one client more than --max-sessions: it must get CAPACITY_REACHED, the others work
  idle        a session silent past --idle-timeout must be closed with SESSION_ERROR
  http        the HTTP endpoints: /health, /schema, /metadata, /reset, /step, /state, errors
  token       a server with a bearer token: refused without it, served with it
  crash       a bridged env whose child dies at its third step: an EXECUTION_ERROR, then the
              same session resets (the child restarted) and plays to the end
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path

import requests
from openenv.core.generic_client import GenericEnvClient

# the example's client (the stock one plus the bearer token): tested here as users run it
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from openenv_client import Client  # noqa: E402


def fail(msg):
    print(f"openenv_check: {msg}", file=sys.stderr)
    sys.exit(1)


def choose(obs, seed, t):
    """The action rule both sides use: admissible[(seed + 3 t) mod n]."""
    adm = obs["admissible"]
    return adm[(seed + 3 * t) % len(adm)]


def reset_kwargs(args, seed):
    kw = {"seed": seed}
    if args.template:
        kw["template"] = args.template
    if args.difficulty is not None:
        kw["difficulty"] = args.difficulty
    return kw


def record(result):
    return {"observation": result.observation, "reward": result.reward, "done": result.done}


def play_sync(args):
    episodes = []
    with GenericEnvClient(base_url=args.url).sync() as env:
        try:
            env.step({"action": "look"})
            fail("a step before reset was accepted")
        except RuntimeError as err:
            if "VALIDATION_ERROR" not in str(err) or "before reset" not in str(err):
                fail(f"unexpected error for a step before reset: {err}")
        for e in range(args.episodes):
            seed = args.seed + e
            r = env.reset(**reset_kwargs(args, seed))
            ep = {"seed": seed, "reset": record(r), "steps": []}
            if e == 0:
                # an inadmissible action is an error answer; the session goes on
                try:
                    env.step({"action": "juggle the moon"})
                    fail("an inadmissible action was accepted")
                except RuntimeError as err:
                    if "VALIDATION_ERROR" not in str(err) or "admissible" not in str(err):
                        fail(f"unexpected error for an inadmissible action: {err}")
                st = env.state()
                if st.get("step_count") != 0 or st.get("episode_id") is None:
                    fail(f"state after a refused action: {st}")
            t = 0
            while not r.done:
                a = choose(r.observation, seed, t)
                r = env.step({"action": a})
                ep["steps"].append({"action": a, **record(r)})
                t += 1
                if t > 500:
                    fail("episode longer than 500 steps")
            try:
                env.step({"action": "anything"})
                fail("a step after done was accepted")
            except RuntimeError as err:
                if "VALIDATION_ERROR" not in str(err):
                    fail(f"unexpected error for a step after done: {err}")
            episodes.append(ep)
    return episodes


async def play_async(args):
    episodes = []
    async with GenericEnvClient(base_url=args.url) as env:
        for e in range(args.episodes):
            seed = args.seed + e
            r = await env.reset(**reset_kwargs(args, seed))
            ep = {"seed": seed, "reset": record(r), "steps": []}
            t = 0
            while not r.done:
                a = choose(r.observation, seed, t)
                r = await env.step({"action": a})
                ep["steps"].append({"action": a, **record(r)})
                t += 1
            episodes.append(ep)
    return episodes


async def one_client(url, k, episodes, token=None):
    steps = 0
    client = Client(url, token)
    async with client as env:
        for e in range(episodes):
            seed = 1000 * k + e
            r = await env.reset(seed=seed)
            t = 0
            while not r.done:
                r = await env.step({"action": choose(r.observation, seed, t)})
                t += 1
            steps += t
    return steps


async def concurrent(args):
    steps = await asyncio.gather(
        *(one_client(args.url, k, args.episodes) for k in range(args.clients))
    )
    return {"clients": args.clients, "episodes": args.clients * args.episodes, "steps": sum(steps)}


async def capacity(args):
    held = [GenericEnvClient(base_url=args.url) for _ in range(args.clients - 1)]
    for c in held:
        await c.connect()
        await c.reset(seed=1)
    extra = GenericEnvClient(base_url=args.url)
    try:
        await extra.connect()
        await extra.reset(seed=1)
        fail("a session over the limit was served")
    except RuntimeError as err:
        if "CAPACITY_REACHED" not in str(err):
            fail(f"over the limit: expected CAPACITY_REACHED, got {err!r}")
    finally:
        await extra.close()
    # the held sessions still work
    for c in held:
        await c.state()
        await c.close()
    # and a slot is free again once they closed
    await asyncio.sleep(0.3)
    again = GenericEnvClient(base_url=args.url)
    async with again:
        await again.reset(seed=2)
    return {"refused_over_limit": True}


async def idle(args):
    env = GenericEnvClient(base_url=args.url, message_timeout_s=10)
    await env.connect()
    await env.reset(seed=1)
    await asyncio.sleep(args.wait)
    try:
        await env.state()
        fail("an idle session was still served")
    except Exception as err:  # the error answer, or the closed connection
        text = str(err)
        if "SESSION_ERROR" not in text and "idle" not in text and "1000" not in text:
            fail(f"idle session: unexpected error {err!r}")
    await env.close()
    return {"idle_closed": True}


def http(args):
    u = args.url
    if requests.get(f"{u}/health").json() != {"status": "healthy"}:
        fail("/health")
    schema = requests.get(f"{u}/schema").json()
    if schema["action"]["required"] != ["action"] or "admissible" not in schema["observation"]["properties"]:
        fail(f"/schema: {schema}")
    meta = requests.get(f"{u}/metadata").json()
    if not meta["name"].startswith("dreamgym:"):
        fail(f"/metadata: {meta}")
    r = requests.post(f"{u}/reset", json={"seed": 5})
    r.raise_for_status()
    obs = r.json()["observation"]
    eid = obs["episode_id"]
    bad = requests.post(f"{u}/step", json={"action": {"action": obs["admissible"][0]}})
    if bad.status_code != 422 or "episode_id" not in bad.json()["detail"]["message"]:
        fail(f"/step without episode_id: {bad.status_code} {bad.text}")
    bad = requests.post(f"{u}/step", data=b"{oops", headers={"content-type": "application/json"})
    if bad.status_code != 400 or bad.json()["detail"]["code"] != "INVALID_JSON":
        fail(f"/step with bad JSON: {bad.status_code} {bad.text}")
    done, steps = False, 0
    while not done:
        body = {"action": {"action": choose(obs, 5, steps)}, "episode_id": eid}
        r = requests.post(f"{u}/step", json=body)
        r.raise_for_status()
        out = r.json()
        obs, done = out["observation"], out["done"]
        steps += 1
    st = requests.get(f"{u}/state", params={"episode_id": eid}).json()
    if st["step_count"] != steps or not st["done"]:
        fail(f"/state after the episode: {st}")
    again = requests.post(f"{u}/reset", json={"seed": 6, "episode_id": eid}).json()
    if again["observation"]["episode_id"] != eid or again["observation"]["step"] != 0:
        fail(f"/reset of the same HTTP session: {again}")
    gone = requests.get(f"{u}/state", params={"episode_id": "no-such-session"})
    if gone.status_code != 410:
        fail(f"/state of an unknown session: {gone.status_code} {gone.text}")
    return {"http_steps": steps}


async def token(args):
    if requests.get(f"{args.url}/health").status_code != 200:
        fail("/health must not need the token")
    if requests.get(f"{args.url}/schema").status_code != 401:
        fail("/schema without the token was served")
    ok = requests.get(f"{args.url}/schema", headers={"Authorization": f"Bearer {args.token}"})
    if ok.status_code != 200:
        fail(f"/schema with the token: {ok.status_code}")
    try:
        async with GenericEnvClient(base_url=args.url) as env:
            await env.reset(seed=1)
        fail("a WebSocket without the token was served")
    except ConnectionError:
        pass
    steps = await one_client(args.url, 0, 1, token=args.token)
    return {"token_steps": steps}


def crash(args):
    with GenericEnvClient(base_url=args.url).sync() as env:
        env.reset(seed=1)
        env.step({"action": "a"})
        env.step({"action": "a"})
        try:
            env.step({"action": "a"})
            fail("the step of a dead child succeeded")
        except RuntimeError as err:
            if "EXECUTION_ERROR" not in str(err):
                fail(f"a dead child: expected EXECUTION_ERROR, got {err}")
        r = env.reset(seed=2)
        steps = 0
        while not r.done:
            r = env.step({"action": "a"})
            steps += 1
    return {"after_restart": steps}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["play", "concurrent", "capacity", "idle", "http", "token", "crash"])
    p.add_argument("--url", required=True)
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--client", choices=["sync", "async"], default="sync")
    p.add_argument("--template")
    p.add_argument("--difficulty", type=int)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--wait", type=float, default=2.0)
    p.add_argument("--token")
    args = p.parse_args()
    if args.mode == "play":
        out = play_sync(args) if args.client == "sync" else asyncio.run(play_async(args))
    elif args.mode == "concurrent":
        out = asyncio.run(concurrent(args))
    elif args.mode == "capacity":
        out = asyncio.run(capacity(args))
    elif args.mode == "idle":
        out = asyncio.run(idle(args))
    elif args.mode == "http":
        out = http(args)
    elif args.mode == "crash":
        out = crash(args)
    else:
        out = asyncio.run(token(args))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
