#!/usr/bin/env bash
# Mutation testing of the safety modules with mutmut 3 (not part of CI).
#
#   scripts/mutation.sh [MODULE ...]        modules: rules signal_check coerce measures limits guard
#                                           claim bus consumer delivery
#                                           (default: all, in that order)
#
# Needs the `mutation` extra (pip install -e '.[mutation]') and the local Redis on 127.0.0.1:6379,
# like the tests. Environment: PYTHON (default .venv/bin/python, else python3), MUTATION_DIR (work
# area, default $TMPDIR/quanticity-mutation), MUTATION_JOBS (parallel mutants, default 2),
# MUTATION_LUA=0 to skip the Lua phase.
#
# Decisions:
# - Each module runs in its own copy of the working tree (tracked and untracked files, not ignored
#   ones), so the repo never gets a mutants/ folder and modules do not share mutmut state. The copy
#   gets a generated setup.cfg [mutmut] section: every package is copied into mutants/, only the
#   module's file is mutated (only_mutate), and only the module's own test files are collected
#   (pytest_add_cli_args_test_selection); mutmut then runs, per mutant, just the tests that call the
#   mutated function.
# - The delivery module is big; only its exactly-once functions (claim/lease use, recording, retry,
#   dead letter, scheduling, idempotency key) are run, selected by mutant-name globs.
# - mutmut only mutates Python inside functions. The atomic parts of the claim and of the delivery
#   lease are Lua scripts (string constants), which it never touches; a second phase applies a fixed
#   list of hand-written Lua mutants (one at a time, in the copy) and runs the module's tests on each.
# - Kill rate = killed (incl. timeouts) / all mutants run. "no tests" (a function none of the
#   selected tests calls) counts as a survivor, since nothing would notice the change.
# - Workers come from a fork server (process_isolation = forkserver), not from the process that ran
#   the clean tests: the local fakes are per-process singletons serving from threads, and a worker
#   forked from that process sends its requests to the parent's fake (every mutant looks killed).
# - It works on whatever the files contain; a module whose tests are not green before mutation is
#   reported as such and skipped.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
WORK=${MUTATION_DIR:-${TMPDIR:-/tmp}/quanticity-mutation}
JOBS=${MUTATION_JOBS:-2}
LUA=${MUTATION_LUA:-1}
ALL_MODULES=(rules signal_check coerce measures limits guard claim bus consumer delivery)

die() { echo "mutation.sh: $*" >&2; exit 2; }
"$PYTHON" -c 'import mutmut' 2>/dev/null || die "mutmut is not installed for $PYTHON (pip install -e '.[mutation]')"

# module -> source file | test files | mutant-name globs (empty: every mutant of the file)
# The risk check is four files (rules, signal_check, coerce, measures), all tested by the same tests.
RISK_TESTS="tests/risk/test_risk_rules.py tests/risk/test_risk_windows.py tests/risk/test_risk_properties.py tests/risk/test_boundaries.py"
spec() {
  case "$1" in
    rules) echo "core/risk/rules.py|$RISK_TESTS|" ;;
    signal_check) echo "core/risk/signal_check.py|$RISK_TESTS|" ;;
    coerce) echo "core/risk/coerce.py|$RISK_TESTS|" ;;
    measures) echo "core/risk/measures.py|$RISK_TESTS|" ;;
    limits) echo "core/risk/limits.py|tests/risk/test_risk_limits.py tests/risk/test_risk_properties.py tests/risk/test_boundaries.py|" ;;
    guard) echo "core/execution/guard.py|tests/execution/test_guard.py tests/ibkr/test_adapter_guard.py tests/safety/test_order_guard_edges.py|" ;;
    claim) echo "core/approvals/claims.py|tests/safety/test_approval_claim_race.py tests/telegram/test_tg_approvals.py|" ;;
    bus) echo "core/bus/bus.py|tests/bus|" ;;
    consumer) echo "core/bus/consumer.py|tests/bus|" ;;
    delivery)
      local g="" f
      for f in _process on_timer _record_delivered _record_failure _dead_letter _schedule _after_commit_send \
               idempotency_key chain_member _member; do
        g+=" bot.distribution.service.*${f}__mutmut_*"
      done
      echo "bot/distribution/service.py|tests/safety/test_delivery_two_workers.py tests/distribution/test_durability.py|${g# }" ;;
    *) return 1 ;;
  esac
}

# Hand-written Lua mutants: module|file|python literal to replace|replacement|what it breaks
lua_mutants() {
  cat <<'EOF'
claim|core/approvals/claims.py|if state ~= 'pending' then|if state == 'decided' then|a decided card can be decided again
claim|core/approvals/claims.py|and now >= expires then|and now > expires then|a press at the expiry instant still wins
claim|core/approvals/claims.py|if ARGV[1] ~= 'expired' and expires|if false and expires|a press after expiry still wins
claim|core/approvals/claims.py|redis.call('ZREM', KEYS[2], ARGV[4])|redis.call('ZSCORE', KEYS[2], ARGV[4])|a decided card stays in the expiry index
delivery|bot/distribution/service.py|redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])|redis.call('ZSCORE', KEYS[1], ARGV[1])|no lease: another worker claims an in-flight delivery
delivery|bot/distribution/service.py|redis.call('HSET', KEYS[2], 'inflight', ARGV[6])|redis.call('HGET', KEYS[2], 'inflight')|no in-flight marker: a crash after posting re-posts
delivery|bot/distribution/service.py|if st[1] == 'delivered' or st[1] == 'dead' then|if st[1] == 'dead' then|a delivered item can be claimed again
delivery|bot/distribution/service.py|tonumber(s) > tonumber(ARGV[2]) then return false end|tonumber(s) > tonumber(ARGV[2]) + 600000 then return false end|deliveries go out up to 10 min before their tier delay
delivery|bot/distribution/service.py|if m < ARGV[4] then|if m > ARGV[4] then|updates overtake their root
EOF
}

copy_tree() {  # the working tree (tracked + untracked, not ignored) into $1
  rm -rf "$1" && mkdir -p "$1"
  (cd "$ROOT" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$1"
}

write_cfg() {  # $1 dir, $2 source file, $3 tests
  local dir=$1 src=$2 tests=$3 extra="" entry
  for entry in "$dir"/*; do
    entry=$(basename "$entry")
    case "$entry" in bot|core|overseer|reports|tests|mutants|setup.cfg|pyproject.toml) ;; *) extra+=$'\n    '"$entry" ;; esac
  done
  {
    echo "[mutmut]"
    echo "source_paths ="
    for p in bot core overseer reports; do [[ -d "$dir/$p" ]] && echo "    $p"; done
    echo "only_mutate ="
    echo "    $src"
    echo "also_copy =${extra}"
    echo "pytest_add_cli_args_test_selection ="
    for t in $tests; do echo "    $t"; done
    # forkserver: the fakes are per-process singletons with server threads; a worker forked from
    # the process that ran the clean tests would post to the parent's fake (false kills)
    echo "process_isolation = forkserver"
    echo "pytest_add_cli_args ="
    echo "    -p"
    echo "    no:cacheprovider"
    echo "    -x"
  } > "$dir/setup.cfg"
}

summarize() {  # $1 dir, $2 module, $3 source, $4 globs -> prints the table rows, writes $1/summary.json
  (cd "$1" && "$PYTHON" - "$2" "$3" "$4" <<'EOF'
import fnmatch, json, subprocess, sys
from pathlib import Path
module, src, globs = sys.argv[1], sys.argv[2], sys.argv[3].split()
meta = Path("mutants") / (src + ".meta")
codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
status = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", 37: "killed", None: "not checked"}
rows = {k: status.get(v, "suspicious") for k, v in codes.items()
        if not globs or any(fnmatch.fnmatch(k, g) for g in globs)}
killed = sum(s in ("killed", "timeout") for s in rows.values())
counted = [k for k, s in rows.items() if s not in ("skipped", "not checked")]
survivors = sorted(k for k in counted if rows[k] not in ("killed", "timeout"))
rate = 100.0 * killed / len(counted) if counted else 0.0
print(f"{module:<10} {src:<30} mutants {len(counted):4d}  killed {killed:4d}  survived {len(survivors):4d}  "
      f"kill rate {rate:5.1f}%")
for k in survivors:
    print(f"  survivor ({rows[k]}): {k}")
    diff = subprocess.run([sys.executable, "-m", "mutmut", "show", k], capture_output=True, text=True).stdout
    for line in diff.splitlines():
        if line.startswith(("+ ", "- ", "+\t", "-\t")) or (line[:1] in "+-" and not line.startswith(("+++", "---"))):
            print(f"      {line.strip()[:150]}")
Path("summary.json").write_text(json.dumps({"module": module, "mutants": len(counted), "killed": killed,
                                            "survivors": survivors}))
EOF
  )
}

lua_phase() {  # $1 dir, $2 module, $3 tests
  local dir=$1 module=$2 tests=$3 n=0 k=0 line m file old new what
  while IFS='|' read -r m file old new what; do
    [[ "$m" == "$module" ]] || continue
    n=$((n + 1))
    cp "$dir/$file" "$dir/$file.orig"
    if ! "$PYTHON" - "$dir/$file" "$old" "$new" <<'EOF'
import sys
p, old, new = sys.argv[1:]
s = open(p).read()
if s.count(old) != 1:
    sys.exit(f"not found once: {old}")
open(p, "w").write(s.replace(old, new))
EOF
    then
      echo "  lua mutant $n: NOT APPLIED (source changed?): $what"
      mv "$dir/$file.orig" "$dir/$file"; continue
    fi
    # shellcheck disable=SC2086
    if (cd "$dir" && timeout 900 "$PYTHON" -m pytest -x -q -p no:cacheprovider $tests >/dev/null 2>&1); then
      echo "  lua mutant $n: SURVIVED  $what"
    else
      k=$((k + 1)); echo "  lua mutant $n: killed    $what"
    fi
    mv "$dir/$file.orig" "$dir/$file"
  done < <(lua_mutants)
  echo "$n $k" > "$dir/lua.txt"
}

modules=("$@")
[[ ${#modules[@]} -eq 0 ]] && modules=("${ALL_MODULES[@]}")
for m in "${modules[@]}"; do spec "$m" >/dev/null || die "unknown module '$m' (one of: ${ALL_MODULES[*]})"; done
mkdir -p "$WORK" || die "cannot create $WORK"

total=0; total_killed=0
for m in "${modules[@]}"; do
  IFS='|' read -r src tests globs < <(spec "$m")
  dir="$WORK/$m"
  echo "== $m: mutating $src against: $tests"
  missing=""; for t in $tests; do [[ -e "$ROOT/$t" ]] || missing+=" $t"; done
  [[ -z "$missing" ]] || { echo "  skipped: test files missing:$missing"; continue; }
  copy_tree "$dir"
  write_cfg "$dir" "$src" "$tests"
  start=$(date +%s)
  # shellcheck disable=SC2086
  (cd "$dir" && "$PYTHON" -m mutmut run --max-children "$JOBS" $globs) > "$dir/mutmut.log" 2>&1
  rc=$?
  if [[ $rc -ne 0 ]] && grep -q "Failed to run clean test" "$dir/mutmut.log"; then
    echo "  skipped: the module's tests are not green before mutation (see $dir/mutmut.log)"; continue
  fi
  summarize "$dir" "$m" "$src" "$globs"
  if [[ "$LUA" == "1" ]] && lua_mutants | grep -q "^$m|"; then
    lua_phase "$dir" "$m" "$tests"
    read -r ln lk < "$dir/lua.txt"
    echo "  lua mutants: $lk of $ln killed"
    total=$((total + ln)); total_killed=$((total_killed + lk))
  fi
  read -r mn mk < <("$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["mutants"], d["killed"])' \
                    "$dir/summary.json")
  total=$((total + mn)); total_killed=$((total_killed + mk))
  echo "  ($(( $(date +%s) - start )) s; log: $dir/mutmut.log)"
done
if [[ $total -gt 0 ]]; then
  echo "== overall: $total_killed of $total mutants killed ($(( 1000 * total_killed / total / 10 )).$(( 1000 * total_killed / total % 10 ))%)"
fi
