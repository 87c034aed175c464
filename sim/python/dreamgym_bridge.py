#!/usr/bin/env python3
"""dreamgym bridge: serves one environment over JSON lines on stdin/stdout (docs/bridge.md).

Usage: python dreamgym_bridge.py            (the env is chosen by each `reset`)

Adapters: `BabyAI-*` / `MiniGrid-*` levels (minigrid) and `twx:<game>:<params>` (TextWorldExpress).
Everything a library prints goes to stderr: the protocol owns stdout.
"""
import json
import os
import re
import sys
import traceback

# 2: every reply echoes its request's `id` (docs/bridge.md)
PROTOCOL = 2

# Keep the real stdout for the protocol and point fd 1 (and sys.stdout) at stderr, so that prints
# from level generators ("Sampling rejected: ...") or Java never reach the protocol channel.
_proto = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr


def reply(obj, req_id=None):
    if req_id is not None:
        obj = {"id": req_id, **obj}
    _proto.write(json.dumps(obj, separators=(",", ":")) + "\n")
    _proto.flush()


class BridgeError(Exception):
    pass


# Difficulty knobs: a reset's `params.difficulty` (levels counted like a scenario's: 1, or 0 or none,
# is the env as named; each level above adds one knob step, up to MAX_DIFFICULTY) makes the env
# harder in a controlled way, for curricula (docs/bridge.md, "Difficulty").
MAX_DIFFICULTY = 4
# BabyAI/MiniGrid constructor arguments that add clutter, and how much each difficulty step adds.
BABYAI_KNOBS = (("num_dists", 2), ("num_objs", 2))
# TextWorldExpress game parameters that add locations or distractors, with their largest values.
TWX_KNOBS = (("numLocations", 11), ("numDistractorItems", 10))


def check_difficulty(difficulty):
    """The level asked for (0 and 1 both mean the env as named)."""
    if not isinstance(difficulty, int) or isinstance(difficulty, bool) or not 0 <= difficulty <= MAX_DIFFICULTY:
        raise BridgeError(f"difficulty must be an integer from 1 to {MAX_DIFFICULTY} (1 is the env as named), got {difficulty!r}")
    return max(difficulty, 1)


# ----------------------------------------------------------------------------------------- BabyAI
class BabyAI:
    ACTIONS = ["turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done"]

    def __init__(self, env_id, params, difficulty=1):
        import gymnasium as gym
        import minigrid  # noqa: F401  (registers the levels)
        from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT

        self.gym = gym
        self.idx_obj, self.idx_color = IDX_TO_OBJECT, IDX_TO_COLOR
        self.difficulty = difficulty
        self.knobs = self._knobs(env_id, params, difficulty - 1) if difficulty > 1 else {}
        try:
            self.env = gym.make(env_id, **{**params, **self.knobs})
        except Exception as e:  # unknown level, bad kwargs
            raise BridgeError(f"cannot make {env_id}: {e}")
        self.env_id = env_id

    def _knobs(self, env_id, params, steps):
        """Constructor arguments that make the level `steps` knob steps harder: more distractors."""
        import inspect
        from gymnasium.envs.registration import load_env_creator

        try:
            spec = self.gym.spec(env_id)
            creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
        except Exception as e:
            raise BridgeError(f"cannot make {env_id}: {e}")
        args = {k: p.default for k, p in inspect.signature(creator).parameters.items() if p.default is not inspect.Parameter.empty}
        args.update(spec.kwargs)
        args.update(params)
        for knob, step in BABYAI_KNOBS:
            if isinstance(args.get(knob), int):
                return {knob: args[knob] + step * steps}
        names = " or ".join(k for k, _ in BABYAI_KNOBS)
        raise BridgeError(f"{env_id} has no difficulty knob ({names}): only difficulty 1 (the level as named) is served")
        self.bot = None
        self.last_action = None

    def capabilities(self):
        return {"expert": True, "actions": self.ACTIONS}

    def _label(self, obj):
        """A stable id for a grid object within the episode: `red_ball`, then `red_ball_2` for a
        second red ball, in the order the agent first sees them (positions in the view change
        with every move; the object keeps its id)."""
        key = id(obj)
        if key not in self.labels:
            base = f"{obj.color}_{obj.type}"
            self.label_counts[base] = self.label_counts.get(base, 0) + 1
            n = self.label_counts[base]
            self.labels[key] = base if n == 1 else f"{base}_{n}"
        return self.labels[key]

    def _describe(self, obs):
        img = obs["image"]
        # the observed sub-grid holds the world's own objects (for stable ids); the image says
        # what the agent can see of them
        grid, _ = self.env.unwrapped.gen_obs_grid()
        lines = []
        # the agent stands at (3, 6) of the 7x7 egocentric view, facing "up" (decreasing y)
        for y in range(7):
            for x in range(7):
                obj = self.idx_obj[int(img[x, y, 0])]
                if obj in ("unseen", "empty", "floor", "wall", "agent") or (x, y) == (3, 6):
                    continue
                color = self.idx_color[int(img[x, y, 1])]
                fwd, side = 6 - y, x - 3
                where = []
                if fwd:
                    where.append(f"{fwd} step{'s' if fwd > 1 else ''} forward")
                if side:
                    where.append(f"{abs(side)} step{'s' if abs(side) > 1 else ''} {'right' if side > 0 else 'left'}")
                if not where:
                    where.append("right here")
                state = ""
                if obj == "door":
                    state = ["open ", "closed ", "locked "][int(img[x, y, 2])]
                world_obj = grid.get(x, y)
                label = self._label(world_obj) if world_obj is not None else f"{color}_{obj}"
                lines.append((fwd + abs(side), f"[{label}] {obj}: a {state}{color} {obj}, {' and '.join(where)}"))
        lines.sort(key=lambda t: t[0])
        out = [l for _, l in lines]
        front = img[3, 5]
        if self.idx_obj[int(front[0])] == "wall":
            out.insert(0, "[wall] wall: a wall right in front of you")
        carrying = self.env.unwrapped.carrying
        if carrying is not None:
            out.append(f"[carrying] carried: you carry a {carrying.color} {carrying.type} ({self._label(carrying)})")
        return out

    def _obs(self, obs, feedback=""):
        return {"lines": self._describe(obs), "instruction": obs["mission"], "admissible": self.ACTIONS, "feedback": feedback}

    def reset(self, seed):
        from minigrid.utils.baby_ai_bot import BabyAIBot

        obs, _ = self.env.reset(seed=seed)
        self.labels, self.label_counts = {}, {}
        self.obs = obs
        self.bot = BabyAIBot(self.env.unwrapped)
        self.bot_planned = False
        self.last_action = None
        task_params = {"level": self.env_id, **{k: str(v) for k, v in self.knobs.items()}}
        if self.difficulty > 1:
            task_params["difficulty"] = str(self.difficulty)
        task = {"id": task_id(self.env_id, self.difficulty, seed), "instruction": obs["mission"], "params": task_params}
        return {"observation": self._obs(obs), "task": task}

    def step(self, action):
        if action not in self.ACTIONS:
            raise BridgeError(f"unknown action {action!r}; BabyAI actions are: {', '.join(self.ACTIONS)}")
        a = self.ACTIONS.index(action)
        obs, reward, term, trunc, _ = self.env.step(a)
        self.obs = obs
        self.last_action = a
        success = bool(term and reward > 0)
        return {
            "observation": self._obs(obs),
            "reward": 1.0 if success else 0.0,
            "done": bool(term),
            "truncated": bool(trunc and not term),
            "success": success,
            "info": {"env_reward": f"{reward:.6f}"},
        }

    def expert(self):
        from minigrid.utils.baby_ai_bot import BabyAIBot

        # The bot tracks the episode through replan(action_taken); it can only be told about an
        # action after it has planned once, and off-plan actions can confuse it: then it is
        # rebuilt from the current state.
        try:
            a = self.bot.replan(self.last_action if self.bot_planned else None)
        except Exception:
            try:
                self.bot = BabyAIBot(self.env.unwrapped)
                a = self.bot.replan()
            except Exception as e:
                raise BridgeError(f"BabyAI bot failed: {type(e).__name__}: {e}")
        self.bot_planned = True
        self.last_action = None
        return self.ACTIONS[int(a)]


# ------------------------------------------------------------------------------- TextWorldExpress
class CoinExplorer:
    """A deterministic expert for TextWorldExpress's coin game.

    TextWorldExpress makes coin's gold path by a random walk from an unseeded generator, so the
    same seed gave other expert episodes in every process (and `collect`, `run` other data). This
    explorer is a function of what the agent has seen: take the coin when it is in view; else open
    a closed door of this room; else move to the nearest room not yet visited (breadth-first over
    the rooms seen so far, directions in alphabetical order); it follows on from any state, so a
    noisy expert's random steps do not end it.
    """

    # "To the North you see the kitchen", "Through an open wood door, to the East you see the hallway"
    NEIGHBOUR = re.compile(r"to the (\w+) you see the ([^.]+?)(?:\.|$)", re.IGNORECASE | re.MULTILINE)
    ROOM = re.compile(r"You are in the ([^.]+?)(?:\.|$)", re.MULTILINE)
    # "To the East you see a closed wood door" (the game's valid actions list every door action)
    CLOSED = re.compile(r"to the (\w+) you see an? closed", re.IGNORECASE)

    def __init__(self):
        self.visited = set()
        self.exits = {}  # room -> {direction: room}
        self.room = None
        self.closed = []  # directions of the closed doors in view

    def observe(self, look):
        """Notes the room the agent is in and the rooms it sees through open ways."""
        m = self.ROOM.search(look)
        if not m:
            return
        self.room = m.group(1).strip()
        self.visited.add(self.room)
        exits = self.exits.setdefault(self.room, {})
        for d, r in self.NEIGHBOUR.findall(look):
            exits[d.lower()] = r.strip()
        self.closed = sorted(d.lower() for d in self.CLOSED.findall(look))

    def act(self, valid):
        """The next action, or None when nothing is left to explore."""
        if "take coin" in valid:
            return "take coin"
        doors = [f"open door to {d}" for d in self.closed if f"open door to {d}" in valid]
        if doors:
            return doors[0]
        # breadth-first from here over known exits, to the nearest room not yet visited
        first_step = {self.room: None}
        frontier = [self.room]
        while frontier:
            nxt = []
            for r in frontier:
                for d in sorted(self.exits.get(r, {})):
                    to = self.exits[r][d]
                    if to in first_step:
                        continue
                    first_step[to] = first_step[r] or f"move {d}"
                    if to not in self.visited:
                        step = first_step[to]
                        return step if step in valid else None
                    nxt.append(to)
            frontier = nxt
        return None


class TWX:
    def __init__(self, env_id, params, difficulty=1):
        from textworld_express import TextWorldExpressEnv

        parts = env_id.split(":", 2)
        if len(parts) < 2 or not parts[1]:
            raise BridgeError(f"twx env ids look like twx:<game>[:<params>], got {env_id!r}")
        self.game = parts[1]
        self.difficulty = difficulty
        self.game_params = self._harder(env_id, parts[2] if len(parts) > 2 else "", difficulty - 1)
        self.step_limit = int(params.get("step_limit", 50))
        self.env = TextWorldExpressEnv(envStepLimit=self.step_limit)
        try:
            self.env.load(gameName=self.game, gameParams=self.game_params)
        except Exception as e:
            raise BridgeError(f"cannot load {env_id}: {e}")
        self.env_id = env_id

    @staticmethod
    def _harder(env_id, game_params, steps):
        """The game parameters `steps` knob steps harder: one more location and distractor per step."""
        if not steps:
            return game_params
        try:
            kv = dict(p.split("=", 1) for p in game_params.split(",") if p)
        except ValueError:
            raise BridgeError(f"{env_id}: game parameters look like name=value,name=value")
        turned = False
        for knob, top in TWX_KNOBS:
            if knob in kv:
                try:
                    kv[knob] = str(min(int(kv[knob]) + steps, top))
                except ValueError:
                    raise BridgeError(f"{env_id}: {knob} must be an integer, got {kv[knob]!r}")
                turned = True
        if not turned:
            names = " or ".join(k for k, _ in TWX_KNOBS)
            raise BridgeError(f"{env_id} names no difficulty knob ({names}): only difficulty 1 (the game as named) is served")
        return ",".join(f"{k}={v}" for k, v in kv.items())

    def capabilities(self):
        return {"expert": True}

    def _obs(self, text, info, feedback=""):
        lines = []
        for i, s in enumerate(x.strip() for x in text.replace("\n", ". ").split(". ")):
            if s:
                lines.append(f"[t{i}] text: {s.rstrip('.')}")
        inv = info.get("inventory", "").strip()
        if inv:
            lines.append(f"[inventory] inventory: {' '.join(inv.split())}")
        return {"lines": lines, "instruction": info.get("taskDescription", ""), "admissible": sorted(info["validActions"]), "feedback": feedback}

    def reset(self, seed):
        # TextWorldExpress takes a Java int: larger seeds (dreamgym's are 64-bit) wrap into its
        # range; smaller ones are passed as they are
        obs, info = self.env.reset(seed=seed % 2_147_483_647, gameFold="train", generateGoldPath=True)
        self.gold = list(self.env.getGoldActionSequence())
        self.pos = 1 if self.gold and self.gold[0] == "look around" else 0
        self.on_path = True
        self.steps = 0
        self.valid = list(info["validActions"])
        self.explorer = CoinExplorer() if self.game == "coin" else None
        if self.explorer:
            self.explorer.observe(info["look"])
        task_params = {"game": self.game, "params": self.game_params}
        if self.difficulty > 1:
            task_params["difficulty"] = str(self.difficulty)
        task = {"id": task_id(self.env_id, self.difficulty, seed), "instruction": info.get("taskDescription", ""), "params": task_params}
        return {"observation": self._obs(info["look"], info), "task": task}

    def step(self, action):
        self.steps += 1
        if self.on_path and self.pos < len(self.gold) and action == self.gold[self.pos]:
            self.pos += 1
        elif action not in ("look around", "inventory"):
            self.on_path = False
        obs, reward, done, info = self.env.step(action)
        self.valid = list(info["validActions"])
        if self.explorer:
            self.explorer.observe(info["look"])
        success = bool(info.get("tasksuccess"))
        truncated = bool(done and not success and not info.get("taskfailure") and self.steps >= self.step_limit)
        return {
            "observation": self._obs(info["look"], info, feedback=obs.strip().split("\n")[0]),
            "reward": 1.0 if success else 0.0,
            "done": bool(done and not truncated),
            "truncated": truncated,
            "success": success,
            "info": {"score": str(info.get("score"))},
        }

    def expert(self):
        if self.explorer:
            return self.explorer.act(self.valid)
        if not self.on_path or self.pos >= len(self.gold):
            return None
        return self.gold[self.pos]


def task_id(env_id, difficulty, seed):
    """Task ids name the difficulty above 1 (the env as named keeps the ids protocol 1 first shipped)."""
    return f"{env_id}/d{difficulty}/s{seed}" if difficulty > 1 else f"{env_id}/s{seed}"


def make(env_id, params):
    params = dict(params)
    difficulty = check_difficulty(params.pop("difficulty", 1))
    if env_id.startswith("twx:"):
        return TWX(env_id, params, difficulty)
    if env_id.startswith("BabyAI-") or env_id.startswith("MiniGrid-"):
        return BabyAI(env_id, params, difficulty)
    raise BridgeError(f"unknown env id {env_id!r}: expected BabyAI-*, MiniGrid-* or twx:<game>:<params>")


def main():
    reply({"type": "hello", "protocol": PROTOCOL, "adapters": ["BabyAI-*", "MiniGrid-*", "twx:<game>:<params>"], "capabilities": {"expert": True, "max_difficulty": MAX_DIFFICULTY}})
    env, env_key = None, None
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req_id = None
        try:
            req = json.loads(line)
            req_id = req.get("id") if isinstance(req, dict) else None
            op = req.get("op")
            if op == "reset":
                key = (req["env_id"], json.dumps(req.get("params") or {}, sort_keys=True))
                if key != env_key:
                    env, env_key = make(req["env_id"], req.get("params") or {}), key
                out = env.reset(int(req.get("seed", 0)))
                reply({"ok": True, "capabilities": env.capabilities(), **out}, req_id)
            elif op == "step":
                if env is None:
                    raise BridgeError("step before reset")
                reply({"ok": True, **env.step(req["action"])}, req_id)
            elif op == "expert":
                if env is None:
                    raise BridgeError("expert before reset")
                reply({"ok": True, "action": env.expert()}, req_id)
            elif op == "close":
                reply({"ok": True}, req_id)
                return
            else:
                raise BridgeError(f"unknown op {op!r}: expected reset, step, expert or close")
        except BridgeError as e:
            reply({"ok": False, "error": str(e)}, req_id)
        except (KeyError, ValueError, TypeError) as e:
            reply({"ok": False, "error": f"bad request {line[:200]!r}: {type(e).__name__}: {e}"}, req_id)
        except Exception as e:  # an adapter bug: report it, keep serving
            traceback.print_exc(file=sys.stderr)
            reply({"ok": False, "error": f"{type(e).__name__}: {e}"}, req_id)


if __name__ == "__main__":
    main()
