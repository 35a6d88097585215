#!/usr/bin/env bash
# Reproduce a paper figure: run an experiment preset's sweep, draw its figures, check its claims.
#
#   scripts/reproduce.sh NAME|all [--quick] [--force] [--dry-run] [extra Hydra overrides...]
#
# NAME is a preset in conf/experiment/ (`initlab list experiment`); --quick runs NAME_quick, the small
# version used in the tests. Results land in outputs/reproduce/NAME[_quick]/ (figures/ and claims.md inside).
# A previous result there is kept: the script refuses to start (exit 2), or with --force moves it aside to
# outputs/reproduce/NAME[_quick].old-DATE-TIME/ first. --dry-run prints the presets it would run, one per
# line, and runs nothing. `all` takes the preset names from `initlab list --names experiment` (less the
# single-net doctor_* presets, which are for `initlab doctor`).
# Exit status: non-zero if a run, the plots or a claim check failed.
set -uo pipefail
if [ $# -lt 1 ]; then
  echo "usage: scripts/reproduce.sh NAME|all [--quick] [--force] [--dry-run] [overrides...]" >&2
  exit 2
fi
name=$1; shift
suffix=""
force=0
dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) suffix="_quick"; shift ;;
    --force) force=1; shift ;;
    --dry-run) dry=1; shift ;;
    *) break ;;
  esac
done
if [ "$name" = "all" ]; then
  names=$(initlab list --names experiment | grep -v -e '_quick$' -e '^doctor_') || exit 2
else
  names=$name
fi
if [ "$dry" = 1 ]; then
  for preset in $names; do echo "${preset}${suffix}"; done
  exit 0
fi
status=0
for preset in $names; do  # refuse before running anything
  out="outputs/reproduce/${preset}${suffix}"
  if [ -e "$out" ] && [ "$force" = 0 ]; then
    echo "reproduce.sh: error: $out holds a previous result: move it, or pass --force to move it aside" >&2
    exit 2
  fi
done
for preset in $names; do
  out="outputs/reproduce/${preset}${suffix}"
  if [ -e "$out" ]; then
    aside="$out.old-$(date +%Y%m%d-%H%M%S)"
    mv "$out" "$aside" && echo "== previous result moved to $aside"
  fi
  echo "== ${preset}${suffix}: sweep -> $out"
  start=$(date +%s)
  initlab run -m "experiment=${preset}${suffix}" "hydra.sweep.dir=$out" "$@" || status=1
  initlab plot "$out" || status=1
  initlab check "$out"
  [ $? -eq 1 ] && status=1   # 1: a claim failed (3: some skipped; 2: no claim applies, e.g. `regularizers`)
  echo "== ${preset}${suffix}: $(( $(date +%s) - start )) s wall time"
done
exit $status
