#!/usr/bin/env bash
# The resume session quoted in docs/sweeps.md, for real: 6 short jobs, Ctrl-C (SIGINT) while job 1 trains,
# then the same command with resume=true. Runs in a temporary directory; prints the session without the
# progress bars. Usage: scripts/resume_demo.sh
set -um  # -m: the sweep runs as a job that receives SIGINT as from a terminal
cd "$(mktemp -d)" || exit 1
cmd="initlab run -m init=standard,xavier seed=0,1,2 train.steps=1000 hydra.sweep.dir=outputs/multirun/demo"
show() { tr '\r' '\n' | grep -v 'step/s' | grep -v '^$'; }
echo "\$ $cmd"
$cmd > first.txt 2>&1 &
pid=$!
until [ -f outputs/multirun/demo/1/summary.json ]; do sleep 0.2; done
sleep 2
kill -INT "$pid"
wait "$pid"
status=$?
tr '\r' '\n' < first.txt | sed 's/.*\(initlab: interrupted\)/^C\n\1/' | show
echo "[exit status $status]"
echo "\$ $cmd resume=true"
$cmd resume=true 2>&1 | show
echo "[exit status ${PIPESTATUS[0]}]"
