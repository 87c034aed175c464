"""Play episodes of an env served by `dreamgym serve`, with the stock OpenEnv client.

    dreamgym serve scenarios/household.ron --model native --offline offline.jsonl &
    python examples/openenv_client.py --url http://127.0.0.1:8000 --episodes 20

The policy is uniformly random over the admissible actions, or an LLM when DREAMGYM_LLM_URL is set
(any OpenAI-compatible chat-completions server: vLLM, SGLang, llama-server, ...; DREAMGYM_LLM_MODEL
names the model, DREAMGYM_LLM_KEY is sent as a bearer key). Needs `openenv-core` (0.3) and
`requests`; `scripts/setup-venv.sh` makes a venv with both.
"""

import argparse
import asyncio
import os
import random
import re

import requests
from openenv.core.generic_client import GenericEnvClient
from websockets.asyncio.client import connect as ws_connect


class Client(GenericEnvClient):
    """The stock client, plus the server's bearer token when there is one."""

    def __init__(self, base_url, token=None):
        super().__init__(base_url)
        self._token = token

    async def connect(self):
        if self._token is None:
            return await super().connect()
        if self._ws is None:
            self._ws = await ws_connect(
                self._ws_url,
                open_timeout=self._connect_timeout,
                max_size=self._max_message_size,
                additional_headers={"Authorization": f"Bearer {self._token}"},
            )
        return self


class RandomPolicy:
    def __init__(self, seed):
        self.rng = random.Random(seed)

    def act(self, obs):
        return self.rng.choice(obs["admissible"])


class LlmPolicy:
    """Asks a chat model for one of the admissible actions; a reply that names none of them
    falls back to a random admissible action (counted in `fallbacks`)."""

    def __init__(self, url, model, key, seed):
        self.url = url.rstrip("/") + "/chat/completions"
        if not self.url.startswith("http"):
            raise SystemExit(f"DREAMGYM_LLM_URL must be an http(s) URL, got {url!r}")
        self.model = model
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.fallback = RandomPolicy(seed)
        self.fallbacks = 0

    def act(self, obs):
        numbered = "\n".join(f"{i + 1}. {a}" for i, a in enumerate(obs["admissible"]))
        state = "\n".join(obs["lines"])
        prompt = (
            f"Task: {obs['instruction']}\n\nWhat you see:\n{state}\n\n"
            + (f"Last feedback: {obs['feedback']}\n\n" if obs["feedback"] else "")
            + f"Admissible actions:\n{numbered}\n\n"
            "Answer with the number of the best action only."
        )
        r = requests.post(
            self.url,
            json={
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": 8,
                "temperature": 0.0,
            },
            headers=self.headers,
            timeout=120,
        )
        r.raise_for_status()
        reply = r.json()["choices"][0]["message"]["content"] or ""
        m = re.search(r"\d+", reply)
        if m and 1 <= int(m.group()) <= len(obs["admissible"]):
            return obs["admissible"][int(m.group()) - 1]
        self.fallbacks += 1
        return self.fallback.act(obs)


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--token", default=os.environ.get("DREAMGYM_SERVE_TOKEN"))
    args = p.parse_args()
    llm_url = os.environ.get("DREAMGYM_LLM_URL")
    if llm_url:
        policy = LlmPolicy(
            llm_url,
            os.environ.get("DREAMGYM_LLM_MODEL", "default"),
            os.environ.get("DREAMGYM_LLM_KEY"),
            args.seed,
        )
    else:
        policy = RandomPolicy(args.seed)
    successes, steps = 0, 0
    async with Client(args.url, args.token) as env:
        for e in range(args.episodes):
            # no task named: a synthetic env's curriculum chooses one
            result = await env.reset(seed=args.seed + e)
            ret, t = 0.0, 0
            while not result.done:
                result = await env.step({"action": policy.act(result.observation)})
                ret += result.reward or 0.0
                t += 1
            obs = result.observation
            successes += obs["success"]
            steps += t
            print(
                f"episode {e}: task {obs['task_id']}, {t} steps, return {ret:.2f}, "
                f"{'success' if obs['success'] else 'truncated' if obs['truncated'] else 'failure'}"
            )
    print(f"{successes}/{args.episodes} successes, {steps} steps")
    if isinstance(policy, LlmPolicy):
        print(f"{policy.fallbacks} LLM replies named no admissible action (random action taken)")


if __name__ == "__main__":
    asyncio.run(main())
