#!/usr/bin/env bash
# Reproduce a paper figure: run an experiment preset's sweep, draw its figures, check its claims.
#
#   scripts/reproduce.sh NAME|all [--quick] [extra Hydra overrides...]
#
# NAME is a preset in conf/experiment/ (`initlab list experiment`); --quick runs NAME_quick, the small
# version used in the tests. Results land in outputs/reproduce/NAME[_quick]/ (figures/ and claims.md inside).
# Exit status: non-zero if a run, the plots or a claim check failed.
set -uo pipefail
if [ $# -lt 1 ]; then
  echo "usage: scripts/reproduce.sh NAME|all [--quick] [overrides...]" >&2
  exit 2
fi
name=$1; shift
suffix=""
if [ "${1:-}" = "--quick" ]; then suffix="_quick"; shift; fi
if [ "$name" = "all" ]; then
  names=$(initlab list experiment | awk 'NR > 1 {print $1}' | grep -v '_quick$')
else
  names=$name
fi
status=0
for preset in $names; do
  out="outputs/reproduce/${preset}${suffix}"
  rm -rf "$out"
  echo "== ${preset}${suffix}: sweep -> $out"
  start=$(date +%s)
  initlab run -m "experiment=${preset}${suffix}" "hydra.sweep.dir=$out" "$@" || status=1
  initlab plot "$out" || status=1
  initlab check "$out"
  [ $? -eq 1 ] && status=1   # 1: a claim failed (2: no claim applies, e.g. `regularizers`, figures only)
  echo "== ${preset}${suffix}: $(( $(date +%s) - start )) s wall time"
done
exit $status
