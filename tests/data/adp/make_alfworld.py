#!/usr/bin/env python3
"""Writes the ALFWorld-style ADP fixtures (alfworld_train.json, alfworld_heldout.jsonl).

ADP 1.5.0 trajectories in the shape of ADP's agenttuning_alfworld converter: a generic preamble,
the agent's acknowledgement, the task with the room's receptacles, then api_action calls (go,
open, take, put) each answered by a text_observation linked by tool_call_id, a reward on the
last action and a <finish> message. Deterministic: `python3 make_alfworld.py` rewrites the
same files.
"""
import json
import random
from pathlib import Path

PREAMBLE = (
    "Interact with a household to solve a task. For each of your turn, you will be given a list "
    "of actions which you can choose one to perform in this turn.\nOk? Understood?"
)
OBJECTS = ["spraybottle", "soapbottle", "candle", "towel", "cloth", "soapbar"]
SHELVES = ["shelf 1", "shelf 2", "shelf 3", "countertop 1"]
CABINETS = ["cabinet 1", "cabinet 2", "drawer 1"]
TARGETS = ["toilet 1", "garbagecan 1", "sinkbasin 1"]


def listing(items):
    if not items:
        return "nothing"
    names = [f"a {o}" for o in items]
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + ", and " + names[-1]


def episode(rng, n):
    places = {p: [] for p in SHELVES + CABINETS}
    goal_obj = rng.choice(OBJECTS)
    target = rng.choice(TARGETS)
    where = rng.choice(SHELVES + CABINETS)
    places[where].append(f"{goal_obj} 1")
    for _ in range(rng.randint(1, 4)):
        o = rng.choice([x for x in OBJECTS if x != goal_obj])
        places[rng.choice(list(places))].append(f"{o} {rng.randint(2, 3)}")
    receptacles = sorted(SHELVES + CABINETS + TARGETS)
    task = (
        "Here is your task. You are in the middle of a room. Looking quickly around you, you see "
        + listing(receptacles).replace("a ", "a ", 1)
        + f".\nYour task is to: put some {goal_obj} in {target}."
    )
    content = [
        {"class_": "text_observation", "content": PREAMBLE, "name": None, "source": "user"},
        {"class_": "message_action", "content": "OK. I'll follow your instructions.", "description": None},
        {"class_": "text_observation", "content": task, "name": None, "source": "user"},
    ]
    calls = 0

    def act(function, kwargs, obs, reward=None, description=""):
        nonlocal calls
        calls += 1
        cid = f"call_{calls:06d}"
        a = {"tool_call_id": cid, "class_": "api_action", "function": function,
             "kwargs": {k: f'"{v}"' for k, v in kwargs.items()}, "description": description}
        if reward is not None:
            a["reward"] = reward
        content.append(a)
        content.append({"tool_call_id": cid, "class_": "text_observation", "content": obs,
                        "name": None, "source": "environment"})

    # search in a fixed order with some detours, open closed ones, take, carry, put
    order = SHELVES + CABINETS
    rng.shuffle(order)
    for place in order:
        if place in CABINETS:
            act("go", {"location": place}, f"The {place} is closed.", reward=0.0)
            act("open", {"obj": place},
                f"You open the {place}. The {place} is open. In it, you see {listing(places[place])}.",
                reward=0.0)
        else:
            act("go", {"location": place}, f"On the {place}, you see {listing(places[place])}.", reward=0.0)
        if f"{goal_obj} 1" in places[place]:
            act("take", {"item": f"{goal_obj} 1", "source": place},
                f"You pick up the {goal_obj} 1 from the {place}.", reward=0.0)
            break
    act("go", {"location": target}, f"On the {target}, you see nothing.", reward=0.0)
    act("put", {"item": f"{goal_obj} 1", "target": target},
        f"You put the {goal_obj} 1 in/on the {target}.", reward=1.0)
    content.append({"class_": "message_action", "content": "<finish> </finish>",
                    "description": "I've wrapped up the task successfully."})
    return {"schema_version": "1.5.0", "id": f"alfworld_{n}", "content": content, "details": {}}


def main():
    here = Path(__file__).parent
    rng = random.Random(7)
    train = [episode(rng, n) for n in range(40)]
    held = [episode(rng, n) for n in range(40, 55)]
    # a JSON array as ADP's sample_std.json files are, one trajectory per line inside it
    (here / "alfworld_train.json").write_text(
        "[\n" + ",\n".join(json.dumps(t) for t in train) + "\n]\n"
    )
    (here / "alfworld_heldout.jsonl").write_text("".join(json.dumps(t) + "\n" for t in held))


if __name__ == "__main__":
    main()
