"""A bridge (protocol 2) whose expert fails at the k-th expert call of every episode whose seed is
odd: `raise K` answers it with an error (as BabyAI's bot raising AssertionError), `hang K` never
answers it (as the bot looping on a locked door), `crash K` exits. Even seeds play clean. The game:
walk east through 5 rooms ("go east" moves on, "wait" does nothing); reaching room 5 succeeds.

    python3 faulty_expert_bridge.py raise 3
"""

import json
import sys
import time

mode, k = sys.argv[1], int(sys.argv[2])
print(json.dumps({"type": "hello", "protocol": 2, "capabilities": {"expert": True}}), flush=True)
room, asked, seed = 0, 0, 0


def obs():
    return {"lines": [f"[room] place: room {room}", f"[goal] note: walk to room 5 (marker {seed % 50})"],
            "instruction": "walk to room 5", "admissible": ["go east", "wait"]}


for line in sys.stdin:
    req = json.loads(line)
    op, rid = req["op"], req.get("id")
    if op == "reset":
        room, asked, seed = 0, 0, int(req["seed"])
        reply = {"ok": True, "observation": obs(), "task": {"id": f"walk/s{seed}", "instruction": "walk to room 5"}}
    elif op == "step":
        if req["action"] == "go east":
            room += 1
        done = room >= 5
        reply = {"ok": True, "observation": obs(), "reward": 1.0 if done else 0.0, "done": done, "success": done}
    elif op == "expert":
        asked += 1
        if seed % 2 == 1 and asked == k:
            if mode == "raise":
                reply = {"ok": False, "error": "expert failed: AssertionError: off plan"}
            elif mode == "hang":
                time.sleep(3600)
            else:
                sys.exit(3)
        else:
            reply = {"ok": True, "action": "go east"}
    else:
        reply = {"ok": True}
    reply["id"] = rid
    print(json.dumps(reply), flush=True)
