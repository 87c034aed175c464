"""Your own environment behind dreamgym: a small text game served over the bridge protocol.

A row of rooms; a key lies in one (unseen until the agent enters it), a locked chest of some
colour stands in another (a note says where). The agent moves east and west, takes the key and
opens the chest (reward 1, success). Each reset's seed places the agent, the key and the chest;
a reset's `params.difficulty` (2, 3, ...) adds two rooms per level above 1, so
`dreamgym run`'s curriculum can make harder tasks. An expert (walk to the key, take it, walk to
the chest, open it) gives offline data.

Run the main job on it (docs/bridge.md, "Bridging your own environment"):

    dreamgym run bridge:treasure --bridge-cmd "python3 examples/treasure_bridge.py"

Only the standard library; protocol 2 (every reply echoes its request's id). stdout carries the
protocol and nothing else.
"""

import json
import random
import sys

MAX_STEPS = 30
COLOURS = ["red", "green", "blue", "golden"]


class Treasure:
    """One episode of the game."""

    def __init__(self, seed, difficulty):
        rng = random.Random(seed)
        self.rooms = 4 + 2 * max(difficulty - 1, 0)
        self.agent = rng.randrange(self.rooms)
        self.key = rng.choice([r for r in range(self.rooms) if r != self.agent])
        self.chest = rng.choice([r for r in range(self.rooms) if r != self.key])
        self.colour = rng.choice(COLOURS)
        self.holding = False
        self.opened = False
        self.steps = 0

    def observation(self, feedback=""):
        lines = [f"[room_{self.agent}] place: room {self.agent} of {self.rooms}",
                 f"[note] note: the {self.colour} chest is in room {self.chest}"]
        if self.key == self.agent and not self.holding:
            lines.append("[key] item: a brass key on the floor")
        if self.chest == self.agent:
            state = "open" if self.opened else "locked"
            lines.append(f"[chest] item: a {state} {self.colour} chest")
        if self.holding:
            lines.append("[inventory] carried: a brass key")
        return {
            "lines": lines,
            "instruction": self.instruction(),
            "admissible": self.admissible(),
            "feedback": feedback,
        }

    def instruction(self):
        return f"open the {self.colour} chest"

    def admissible(self):
        acts = []
        if self.agent > 0:
            acts.append("go west")
        if self.agent < self.rooms - 1:
            acts.append("go east")
        if self.key == self.agent and not self.holding:
            acts.append("take key")
        if self.chest == self.agent and not self.opened:
            acts.append("open chest")
        return acts

    def act(self, action):
        """Returns (reward, done, feedback)."""
        self.steps += 1
        if action not in self.admissible():
            return 0.0, False, f"you cannot {action} here"
        if action == "go west":
            self.agent -= 1
            return 0.0, False, "you walk west"
        if action == "go east":
            self.agent += 1
            return 0.0, False, "you walk east"
        if action == "take key":
            self.holding = True
            return 0.0, False, "you take the key"
        if not self.holding:
            return 0.0, False, "the chest is locked"
        self.opened = True
        return 1.0, True, "the chest opens: treasure!"

    def expert(self):
        target = self.chest if self.holding else self.key
        if self.agent < target:
            return "go east"
        if self.agent > target:
            return "go west"
        return "open chest" if self.holding else "take key"


def main():
    print(json.dumps({"type": "hello", "protocol": 2,
                      "capabilities": {"expert": True, "max_difficulty": 4}}), flush=True)
    game = None
    for line in sys.stdin:
        req = json.loads(line)
        op = req.get("op")
        try:
            if op == "reset":
                seed = int(req.get("seed", 0))
                difficulty = int(req.get("params", {}).get("difficulty", 1))
                if difficulty > 4:
                    raise ValueError(f"difficulty {difficulty}: this game goes up to 4")
                game = Treasure(seed, difficulty)
                task = {"id": f"treasure/d{difficulty}/s{seed}", "instruction": game.instruction(),
                        "params": {"template": "treasure", "rooms": game.rooms}}
                reply = {"ok": True, "observation": game.observation(), "task": task}
            elif op == "step":
                if game is None:
                    raise ValueError("step before reset")
                reward, done, feedback = game.act(req["action"])
                truncated = not done and game.steps >= MAX_STEPS
                reply = {"ok": True, "observation": game.observation(feedback), "reward": reward,
                         "done": done, "truncated": truncated, "success": done and reward > 0}
            elif op == "expert":
                if game is None:
                    raise ValueError("expert before reset")
                reply = {"ok": True, "action": game.expert()}
            elif op == "close":
                print(json.dumps({"ok": True, "id": req.get("id")}), flush=True)
                return
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as e:  # an error is a reply, never a crash
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        reply["id"] = req.get("id")
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
