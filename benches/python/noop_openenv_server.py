"""openenv-core's own server (FastAPI + uvicorn, 0.3) serving an env whose step does nothing:
the Python protocol ceiling `benches/serve.rs` measures `dreamgym serve` against.

    python benches/python/noop_openenv_server.py PORT
"""

import sys

import uvicorn
from openenv.core.env_server.http_server import create_app
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, Observation, State


class TextAction(Action):
    action: str


class TextObservation(Observation):
    text: str = ""
    admissible: list[str] = []


class NoopEnv(Environment):
    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self):
        super().__init__()
        self._state = State(episode_id=None, step_count=0)

    def reset(self, seed=None, episode_id=None, **kwargs):
        self._state = State(episode_id=episode_id, step_count=0)
        return TextObservation(text="", admissible=["noop"])

    def step(self, action, timeout_s=None, **kwargs):
        self._state.step_count += 1
        return TextObservation(text="", admissible=["noop"], reward=0.0, done=False)

    @property
    def state(self):
        return self._state


app = create_app(NoopEnv, TextAction, TextObservation, env_name="noop", max_concurrent_envs=64)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
