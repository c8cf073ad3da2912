"""A realistic mixed feed for the fault tests: cases with later steps, hazards through their cycle,
worker positions, patrols, repeated messages and invalid ones, in a seeded random interleaving
that keeps each case's and hazard's own order (a producer sends a case's steps after its report)."""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from tests.unit import feed_support as F

# a legal path of the case engine (issue 17): closed follows verification
STEPS = ("registered", "dispatched", "handling", "feedback", "verified", "closed")


def build(n: int, seed: int = 15, prefix: str = "L") -> tuple[list[bytes], set[str], set[int]]:
    """About ``n`` payloads; returns (payloads in stream order, ids of valid messages, indexes of invalid ones)."""
    rnd = random.Random(seed)
    now = datetime.now(F.CST)
    chains: list[list[dict]] = []
    made = 0
    k = 0
    while made < n * 0.9:
        k += 1
        kind = rnd.random()
        if kind < 0.55:  # a case: report then 0-4 steps
            eid = f"{prefix}E{k}"
            ago = 500 + rnd.random() * 100
            chain = [F.reported(eid, rnd.randrange(3), mid=f"{prefix}r{k}",
                                occurred_at=(now - timedelta(minutes=ago)).isoformat(), urgent=rnd.random() < 0.1)]
            for s in range(rnd.randrange(len(STEPS))):
                chain.append(F.step(eid, 2 + s, STEPS[s], mid=f"{prefix}s{k}-{s}", minutes_ago=ago - 5 * (s + 1),
                                    region_code=F.GRIDS[rnd.randrange(3)]))
        elif kind < 0.65:  # a hazard: found, maybe rectified, maybe reinspected
            hid = f"{prefix}H{k}"
            t0 = now - timedelta(minutes=500)
            chain = [dict(F.hazard_found(hid, rnd.randrange(3), mid=f"{prefix}h{k}"), occurred_at=t0.isoformat())]
            if rnd.random() < 0.6:
                chain.append(F.envelope(f"{prefix}hr{k}", type="hazard.rectified", hazard_id=hid,
                                        occurred_at=(t0 + timedelta(minutes=30)).isoformat(),
                                        region_code=F.GRIDS[0], note="已整改"))
                if rnd.random() < 0.5:
                    passed = rnd.random() < 0.8  # a failure needs its reason (the hazard cycle, issue 17)
                    chain.append(F.envelope(f"{prefix}hv{k}", type="hazard.reinspected", hazard_id=hid,
                                            passed=passed, region_code=F.GRIDS[0], note="" if passed else "未整改到位",
                                            occurred_at=(t0 + timedelta(minutes=60)).isoformat()))
        elif kind < 0.9:  # a worker's position ping
            chain = [F.position(f"{prefix}W{rnd.randrange(60)}", rnd.randrange(3), minutes_ago=rnd.random() * 300,
                                mid=f"{prefix}p{k}")]
        else:
            chain = [F.patrol(f"S{rnd.randrange(80):06d}", rnd.randrange(3), mid=f"{prefix}c{k}")]
        chains.append(chain)
        made += len(chain)
    # interleave, keeping each chain's order
    heads = [0] * len(chains)
    live = list(range(len(chains)))
    stream: list[dict] = []
    while live:
        i = rnd.randrange(len(live))
        c = live[i]
        stream.append(chains[c][heads[c]])
        heads[c] += 1
        if heads[c] == len(chains[c]):
            live[i] = live[-1]
            live.pop()
    valid_ids = {m["id"] for m in stream}
    payloads = [json.dumps(m, ensure_ascii=False).encode() for m in stream]
    invalid: set[int] = set()
    extra = n - len(payloads)
    for j in range(extra):
        pos = rnd.randrange(len(payloads) + 1)
        if j % 3 == 0:  # a repeat of an earlier message (a producer's retry): applied once
            payloads.insert(pos, payloads[rnd.randrange(max(1, pos))] if pos else payloads[0])
        else:           # invalid: outside the jurisdiction, or not JSON
            bad = F.reported(f"{prefix}X{j}", mid=f"{prefix}x{j}", location=F.OUTSIDE) if j % 2 else None
            payloads.insert(pos, json.dumps(bad).encode() if bad else b"\xff not json " + str(j).encode())
    invalid = {i for i, p in enumerate(payloads) if p.startswith(b"\xff") or b'"' + prefix.encode() + b'x' in p}
    return payloads, valid_ids, invalid
