#!/usr/bin/env python3
"""What else ran on a core while a bench measured latency there.

Reads `perf script -F pid,tid,time,event,trace` of `sched:sched_switch`
recorded on one core (`perf record -C <core>`) and prints one line:

    CORE_STALLS seconds=10.1 slices=33 stalled_ms=90.9 longest_ms=7.33 by=tokio-rt-worker/76:51.1,kdamond.0/78:39.8

A slice is an unbroken stretch in which the core was given only to
processes other than the bench's own (`--ours`: the servers, Redis, the
stand-in worker), never to the idle task: a request due then waits for all
of it, and for the queue that built up meanwhile. Only slices of at least
`--min-ms` count. `by` sums those slices per thread (name/tid), largest first.

Each stretch runs from a switch to a process until the next switch traced
on the core. The switch away from a process outside this container (the
VM's own agent, say) is not traced, so its stretch may include some of
what ran after it: the figures are upper bounds for such processes, exact
for the rest (kernel threads such as kdamond).

    perf script -i sched.data -F pid,tid,time,event,trace \
        | benches/core_stalls.py --ours 1234,1240 --min-ms 1
"""

import argparse
import re
import sys
from collections import Counter

# The common fields name the task switched out (pid/tid), the trace names
# the task switched in.
SWITCH = re.compile(
    r"^\s*(?P<pid>-?\d+)/(?P<tid>-?\d+)\s+(?P<time>[\d.]+):\s+\S+:\s+prev_comm=.*? "
    r"prev_pid=\d+ .*==> next_comm=(?P<comm>.*?) next_pid=(?P<next>-?\d+) "
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", required=True, help="comma-separated pids of the bench's processes")
    parser.add_argument("--min-ms", type=float, default=1.0, help="shortest slice that counts")
    args = parser.parse_args()
    ours = {int(p) for p in args.ours.split(",") if p}

    switches = []  # (time, tid switched in, its name)
    process_of = {0: 0}  # tid -> pid, learnt from the switches away from each
    for line in sys.stdin:
        m = SWITCH.match(line)
        if m:
            process_of[int(m["tid"])] = int(m["pid"])
            switches.append((float(m["time"]), int(m["next"]), m["comm"]))

    slices = []  # [start, end, Counter of seconds per thread (name/tid)]
    current = None
    for (t, tid, comm), (until, _, _) in zip(switches, switches[1:]):
        pid = process_of.get(tid, -1)  # never switched away: outside the container
        if pid != 0 and pid not in ours:
            if current is None:
                current = [t, until, Counter()]
                slices.append(current)
            current[1] = until
            current[2][f"{comm}/{tid}"] += until - t
        else:
            current = None

    long = [s for s in slices if (s[1] - s[0]) * 1000 >= args.min_ms]
    by = Counter()
    for s in long:
        by.update(s[2])
    seconds = switches[-1][0] - switches[0][0] if switches else 0.0
    print(
        "CORE_STALLS seconds=%.1f slices=%d stalled_ms=%.1f longest_ms=%.2f by=%s"
        % (
            seconds,
            len(long),
            sum(s[1] - s[0] for s in long) * 1000,
            max(((s[1] - s[0]) * 1000 for s in long), default=0.0),
            ",".join(
                "%s:%.1f" % (name.replace(",", " ").replace(" ", "_"), v * 1000)
                for name, v in by.most_common(4)
                if v >= 0.0001
            )
            or "-",
        )
    )


if __name__ == "__main__":
    main()
