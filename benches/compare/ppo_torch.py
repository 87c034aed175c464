"""CleanRL-style PPO in PyTorch over a dreamgym scenario, for the side-by-side benchmark.

The PPO loop follows CleanRL's ppo.py defaults (4 envs x 128 steps, 4 minibatches x 4 epochs,
lr 2.5e-4 annealed, gamma 0.99, lambda 0.95, clip 0.2, ent 0.01, vf 0.5, max-grad-norm 0.5,
advantage normalisation per minibatch, clipped value loss, Adam eps 1e-5). The network is the same
text policy as dreamgym's (64-wide tanh state encoder, action encoder, scorer over admissible
actions, separate 64x64 tanh critic), and the features come from `dreamgym policy serve-env`, so
both learners see identical inputs. Like dreamgym, every iteration starts from fresh resets and
bootstraps episodes cut by the segment end from the critic.

Prints one JSON line with env steps/s, update samples/s, and success.
"""

import argparse
import json
import subprocess
import time

import numpy as np
import torch
import torch.nn as nn


class ServedEnv:
    """One `dreamgym policy serve-env` process."""

    def __init__(self, cmd):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        dims = json.loads(self.proc.stdout.readline())
        self.state_dim = dims["state_dim"]
        self.action_dim = dims["action_dim"]

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError("serve-env exited")
        return json.loads(reply)

    def reset(self, seed, split="train"):
        return self.ask(f"reset {seed} {split}")

    def step(self, index):
        return self.ask(f"step {index}")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def layer(i, o):
    lin = nn.Linear(i, o)
    return lin


class TextPolicy(nn.Module):
    def __init__(self, state_dim, action_dim, hidden=64):
        super().__init__()
        h = hidden
        self.state = nn.Sequential(layer(state_dim, h), nn.Tanh(), layer(h, h), nn.Tanh())
        self.action = nn.Sequential(layer(action_dim, h), nn.Tanh())
        self.score = nn.Sequential(layer(3 * h, h), nn.Tanh(), layer(h, 1))
        self.critic = nn.Sequential(layer(state_dim, h), nn.Tanh(), layer(h, h), nn.Tanh(), layer(h, 1))

    def forward(self, state, actions, mask):
        """state [B, Fs], actions [B, A, Fa], mask [B, A] -> log-probs [B, A], values [B]."""
        b, a, _ = actions.shape
        s = self.state(state)
        act = self.action(actions)
        s_rep = s.unsqueeze(1).expand(b, a, s.shape[1])
        logits = self.score(torch.cat([s_rep, act, s_rep * act], dim=2)).squeeze(2)
        logits = logits + (mask - 1.0) * 1e9
        return torch.log_softmax(logits, dim=1), self.critic(state).squeeze(1)


def dense(sparse, dim):
    v = torch.zeros(dim)
    if sparse:
        idx = torch.tensor([i for i, _ in sparse], dtype=torch.long)
        val = torch.tensor([x for _, x in sparse], dtype=torch.float32)
        v.index_add_(0, idx, val)
    return v


def batch(decisions, state_dim, action_dim):
    b = len(decisions)
    slots = max(len(d["actions"]) for d in decisions)
    state = torch.zeros(b, state_dim)
    actions = torch.zeros(b, slots, action_dim)
    mask = torch.zeros(b, slots)
    for i, d in enumerate(decisions):
        state[i] = d["state_dense"]
        for k, a in enumerate(d["actions"]):
            actions[i, k] = dense(a, action_dim)
            mask[i, k] = 1.0
    return state, actions, mask


def decide(net, obs, state_dim, action_dim):
    state = dense(obs["state"], state_dim).unsqueeze(0)
    actions = torch.stack([dense(a, action_dim) for a in obs["actions"]]).unsqueeze(0)
    mask = torch.ones(1, actions.shape[1])
    with torch.no_grad():
        logp, value = net(state, actions, mask)
    return state[0], logp[0], value[0].item()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dreamgym", required=True, help="path to the dreamgym binary")
    p.add_argument("--env", required=True)
    p.add_argument("--difficulty", type=int, default=1)
    p.add_argument("--iterations", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--lr", type=float, default=2.5e-4)
    args = p.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    num_envs, num_steps, minibatches, epochs = 4, 128, 4, 4
    gamma, lam, clip, ent_coef, vf_coef, max_grad_norm = 0.99, 0.95, 0.2, 0.01, 0.5, 0.5
    cmd = [args.dreamgym, "policy", "serve-env", "--env", args.env, "--difficulty", str(args.difficulty),
           "--vocab-seed", str(args.seed)]
    envs = [ServedEnv(cmd) for _ in range(num_envs)]
    sd, ad = envs[0].state_dim, envs[0].action_dim
    net = TextPolicy(sd, ad)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, eps=1e-5)

    rollout_time = update_time = 0.0
    total_steps = 0
    total_samples = 0
    successes = []
    start = time.perf_counter()
    for it in range(args.iterations):
        lr = args.lr * (1.0 - it / args.iterations)
        for g in opt.param_groups:
            g["lr"] = lr
        t0 = time.perf_counter()
        obs = [e.reset(int(rng.integers(1 << 62))) for e in envs]
        segments = [[] for _ in envs]
        episodes = []
        ep_ret = [0.0] * num_envs
        for t in range(num_steps):
            for i, env in enumerate(envs):
                o = obs[i]
                state, logp, value = decide(net, o, sd, ad)
                probs = logp.exp().numpy().astype(np.float64)
                probs /= probs.sum()
                a = int(rng.choice(len(probs), p=probs))
                r = env.step(a)
                ep_ret[i] += r["reward"]
                ended = r["done"] or r["truncated"]
                last = t + 1 == num_steps
                next_value = 0.0
                if not r["done"] and (ended or last):
                    next_value = decide(net, r, sd, ad)[2]
                segments[i].append({
                    "state_dense": state, "actions": o["actions"], "action": a, "logp": logp[a].item(),
                    "value": value, "reward": r["reward"], "cut": ended or last, "next_value": next_value,
                })
                if ended:
                    episodes.append(r["success"])
                    ep_ret[i] = 0.0
                    if not last:
                        r = env.reset(int(rng.integers(1 << 62)))
                obs[i] = r
        rollout_time += time.perf_counter() - t0
        total_steps += num_envs * num_steps
        successes.append(float(np.mean(episodes)) if episodes else 0.0)

        t1 = time.perf_counter()
        data, adv, ret = [], [], []
        for seg in segments:
            last_gae = 0.0
            a_seg = [0.0] * len(seg)
            for t in reversed(range(len(seg))):
                d = seg[t]
                cut = d["cut"] or t + 1 == len(seg)
                nv = d["next_value"] if cut else seg[t + 1]["value"]
                delta = d["reward"] + gamma * nv - d["value"]
                last_gae = delta + gamma * lam * (0.0 if cut else last_gae)
                a_seg[t] = last_gae
            data.extend(seg)
            adv.extend(a_seg)
            ret.extend(a + d["value"] for a, d in zip(a_seg, seg))
        n = len(data)
        adv_t = torch.tensor(adv)
        ret_t = torch.tensor(ret)
        old_logp = torch.tensor([d["logp"] for d in data])
        old_v = torch.tensor([d["value"] for d in data])
        chosen = torch.tensor([d["action"] for d in data])
        mb = n // minibatches
        for _ in range(epochs):
            order = rng.permutation(n)
            for k in range(0, n, mb):
                idx = order[k:k + mb]
                state, actions, mask = batch([data[i] for i in idx], sd, ad)
                idx_t = torch.tensor(idx)
                logp_all, values = net(state, actions, mask)
                logp = logp_all.gather(1, chosen[idx_t].unsqueeze(1)).squeeze(1)
                log_ratio = logp - old_logp[idx_t]
                ratio = log_ratio.exp()
                a = adv_t[idx_t]
                a = (a - a.mean()) / (a.std() + 1e-8)
                pg = torch.max(-a * ratio, -a * ratio.clamp(1 - clip, 1 + clip)).mean()
                v_unc = (values - ret_t[idx_t]) ** 2
                v_clip = old_v[idx_t] + (values - old_v[idx_t]).clamp(-clip, clip)
                v_loss = 0.5 * torch.max(v_unc, (v_clip - ret_t[idx_t]) ** 2).mean()
                entropy = -(logp_all.exp() * logp_all).sum(1).mean()
                loss = pg - ent_coef * entropy + vf_coef * v_loss
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
                opt.step()
        update_time += time.perf_counter() - t1
        total_samples += n * epochs

    wall = time.perf_counter() - start
    # held-out evaluation (sampled actions, like dreamgym's `sampled` figure)
    eval_ok = 0
    for ep in range(args.eval_episodes):
        o = envs[0].reset(10_000_000 + ep, "heldout")
        while True:
            _, logp, _ = decide(net, o, sd, ad)
            probs = logp.exp().numpy().astype(np.float64)
            probs /= probs.sum()
            o = envs[0].step(int(rng.choice(len(probs), p=probs)))
            if o["done"] or o["truncated"]:
                eval_ok += int(o["success"])
                break
    for e in envs:
        e.close()
    print(json.dumps({
        "learner": "pytorch",
        "env_steps": total_steps,
        "env_steps_per_s": total_steps / wall,
        "rollout_steps_per_s": total_steps / rollout_time,
        "update_samples_per_s": total_samples / update_time,
        "final_train_success": float(np.mean(successes[-5:])),
        "held_out_success": eval_ok / max(1, args.eval_episodes),
        "seconds": wall,
    }))


if __name__ == "__main__":
    main()
