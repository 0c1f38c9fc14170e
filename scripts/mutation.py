"""Mutation testing of the modules that decide things (issue 12), with mutmut.

Why: line coverage says a test ran a line, not that a test would notice if the line were wrong. Mutmut
changes the code one small edit at a time (a `<` for a `<=`, a dropped call, a swapped constant) and runs
the tests that reach the changed function; a mutant no test notices ("survivor") is either a missing test
or an edit that cannot change behaviour ("equivalent"). Every survivor is reviewed: it gets a test that
kills it, or a line in mutation/equivalent/<dotted.module>.txt saying why it is equivalent.

An equivalent line is `<mutant name>  <fingerprint>  <reason>`. Mutmut numbers a function's mutants in
order (x_enqueue__mutmut_56), so any change to the function renumbers them, and a record by name alone
would then excuse some other mutant, possibly a real survivor, while the equivalent one went unrecorded.
The fingerprint is the first 12 hex digits of the sha256 of the mutated function's source as mutmut
generates it (dedented, with the mutant's own name written without its number), so it changes whenever
the function does. Each run checks the records of the selected modules against the mutants generated from
the code as it is: a record whose name no longer exists or whose fingerprint differs is stale, reported
("the code changed: review again") and not counted; if that mutant survives it is an unresolved survivor
and fails the run like any unrecorded one. `scripts/mutation --fingerprint <mutant name>...` prints the
`<mutant name>  <fingerprint>` to paste before the reason (review the mutant first: mutmut show <name>).

Which modules, and which tests judge them: mutation/modules.txt (format in that file). The run fails (exit
1) when a survivor is neither killed nor recorded as equivalent, or when fewer than 90% of the mutants that
ran were killed (kill % excludes recorded equivalents; the raw figure is printed beside it).

Usage (scripts/mutation is the entry point; it runs this file with .venv/bin/python):
  scripts/mutation                          every module of mutation/modules.txt
  scripts/mutation athena_server/cursors.py the named modules (path or dotted name)
  scripts/mutation --changed-since REV      the modules (or their tests) changed since REV (git diff)
  scripts/mutation --sample N --seed S      N mutants drawn reproducibly from the selected modules
  scripts/mutation --budget SECONDS         stop after SECONDS; mutants not reached are reported as not run
  scripts/mutation --ci                     CI's run: the modules changed since the merge-base with
                                            origin/main, or every module when none changed (or no such ref); at most
                                            CI_SAMPLE mutants (fixed seed) so it fits CI_BUDGET seconds
  scripts/mutation --report                 print the table of the last results without running anything
  scripts/mutation --fingerprint NAME...    print '<name>  <fingerprint>' for recording NAME as equivalent

How mutmut 3 works here: it copies athena_server/ to mutants/athena_server/ (every function of a module in
modules.txt becomes a trampoline to its mutants), puts mutants/ first on sys.path and runs pytest from
mutants/ in forked children; the editable install's finder comes after sys.path, so the tests import the
mutated copy (mutmut's forced-fail check aborts the run otherwise). The settings common to every run are
[tool.mutmut] in pyproject.toml; this script sets `only_mutate` (every module of modules.txt) and the test
selection (every test file of modules.txt) on mutmut's configuration before starting it, the same for every
run, so cached verdicts of modules not selected survive a partial run. Selecting modules or a sample only
names the mutants to run. Results are mutmut's own (mutants/*.meta).
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES_FILE = ROOT / "mutation" / "modules.txt"
EQUIVALENT_DIR = ROOT / "mutation" / "equivalent"
LOG_FILE = ROOT / "mutants" / "mutation-run.log"
TARGET_PERCENT = 90.0
# CI: about 5 minutes on the 2-core machine with one mutmut child, start-up (copying, mutant generation,
# stats, clean run) included: 150 mutants took 86 s on the shared machine (2026-12-06), so 300 leave room
# for mutants that time out; the budget stops mutmut in any case.
CI_BUDGET = 300
CI_SAMPLE = 300
CI_SEED = 12
CLASS_SEP = "ǁ"  # mutmut's separator in the mangled names of methods
FINGERPRINT = re.compile(r"[0-9a-f]{12}")

KILLED, SURVIVED, TIMEOUT, SUSPICIOUS, NOT_RUN = "killed", "survived", "timeout", "suspicious", "not run"


def status_of(exit_code: int | None) -> str:
    """mutmut's exit codes (mutmut.stats.status_by_exit_code), folded into what the table counts."""
    if exit_code is None:
        return NOT_RUN
    if exit_code in (1, 3):
        return KILLED
    if exit_code in (36, 24, -24, 152, 255):
        return TIMEOUT
    if exit_code in (0, 5, 33):  # 5/33: no test reaches the function, which is a survivor too
        return SURVIVED
    return SUSPICIOUS


@dataclass(frozen=True)
class Target:
    path: str
    functions: tuple[str, ...]
    tests: tuple[str, ...]

    @property
    def module(self) -> str:
        return self.path.removesuffix(".py").replace("/", ".")

    @property
    def label(self) -> str:
        return self.module + (f":{','.join(self.functions)}" if self.functions else "")

    def globs(self) -> list[str]:
        if not self.functions:
            return [f"{self.module}.x*"]
        out = []
        for name in self.functions:
            cls, _, method = name.rpartition(".")
            mangled = f"x{CLASS_SEP}{cls}{CLASS_SEP}{method}" if cls else f"x_{name}"
            out.append(f"{self.module}.{mangled}__mutmut_*")
        return out

    def owns(self, mutant: str) -> bool:
        return any(fnmatch.fnmatchcase(mutant, g) for g in self.globs())


def load_targets() -> list[Target]:
    targets = []
    for number, raw in enumerate(MODULES_FILE.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *tests = line.split()
        path, _, functions = spec.partition(":")
        if not (ROOT / path).is_file() or not tests:
            sys.exit(f"{MODULES_FILE}:{number}: expected '<module path>[:functions] <test file>...', got {raw!r}")
        for test in tests:
            if not (ROOT / test).exists():
                sys.exit(f"{MODULES_FILE}:{number}: no test file {test}")
        targets.append(Target(path, tuple(f for f in functions.split(",") if f), tuple(tests)))
    return targets


@dataclass(frozen=True)
class Equivalent:
    """A reviewed survivor: valid only while the mutant of that name still has this fingerprint."""

    fingerprint: str
    reason: str


def load_equivalents() -> dict[str, Equivalent]:
    """mutant name -> its record, from every file of mutation/equivalent/."""
    out: dict[str, Equivalent] = {}
    for file in sorted(EQUIVALENT_DIR.glob("*.txt")):
        for number, raw in enumerate(file.read_text().splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 2)
            if len(parts) < 3 or not FINGERPRINT.fullmatch(parts[1]):
                sys.exit(
                    f"{file.relative_to(ROOT)}:{number}: expected '<mutant name>  <fingerprint>  <reason>' "
                    "(scripts/mutation --fingerprint <mutant name> prints the first two)"
                )
            name, fp, reason = parts
            if name in out:
                sys.exit(f"{file.relative_to(ROOT)}:{number}: {name} is recorded twice")
            out[name] = Equivalent(fp, reason)
    return out


def fingerprint(mangled: str, source: str) -> str:
    """Short hash of one mutant's generated function. Its own name loses the number, which is not part
    of what the mutant is: the same edit of the same function keeps its fingerprint under any number."""
    base = mangled.rpartition("__mutmut_")[0]
    text = textwrap.dedent(source).strip("\n").replace(mangled, f"{base}__mutmut")
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@functools.cache
def module_mutants(path: str) -> dict[str, str]:
    """Every mutant mutmut makes of one module (full name -> fingerprint), generated the way mutmut
    generates them (without running anything)."""
    os.chdir(ROOT)
    from mutmut.mutation.file_mutation import mutate_file_contents
    from mutmut.utils.format_utils import get_mutant_name

    mutated = mutate_file_contents(path, (ROOT / path).read_text())
    lines = mutated.code.splitlines(keepends=True)
    out: dict[str, str] = {}
    for name in mutated.mutant_names:
        span = mutated.line_span_by_function_name[name]
        out[get_mutant_name(Path(path), name)] = fingerprint(name, "".join(lines[span.start - 1 : span.end]))
    return out


def generated(targets: Iterable[Target]) -> dict[str, str]:
    """The targets' mutants: full name -> fingerprint."""
    return {n: fp for t in targets for n, fp in module_mutants(t.path).items() if t.owns(n)}


def reviewed(selected: list[Target], equivalents: dict[str, Equivalent]) -> tuple[dict[str, Equivalent], list[str]]:
    """The records of the selected modules that still name the mutant they were written for, and a line
    for every record that does not (renumbered or changed by an edit of its function: review it again)."""
    mutants = generated(selected)
    valid: dict[str, Equivalent] = {}
    stale: list[str] = []
    for name, record in equivalents.items():
        if not any(t.owns(name) for t in selected):
            continue
        if name not in mutants:
            stale.append(f"{name}: no such mutant any more (the code changed: review again)")
        elif mutants[name] != record.fingerprint:
            stale.append(
                f"{name}: not the mutant that was reviewed (fingerprint differs: the code changed, review again)"
            )
        else:
            valid[name] = record
    return valid, stale


def git(*args: str) -> str | None:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def changed_targets(targets: list[Target], rev: str) -> list[Target]:
    diff = git("diff", "--name-only", rev, "--")
    if diff is None:
        sys.exit(f"git diff against {rev!r} failed")
    untracked = git("ls-files", "--others", "--exclude-standard") or ""
    changed = set(diff.splitlines()) | set(untracked.splitlines())
    return [t for t in targets if t.path in changed or changed.intersection(t.tests)]


def mutant_names(targets: Iterable[Target]) -> list[str]:
    """Every mutant mutmut makes of the targets, computed the way mutmut names them (without running)."""
    return sorted(generated(targets))


def read_results(targets: Iterable[Target]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for path in {t.path for t in targets}:
        meta = ROOT / "mutants" / f"{path}.meta"
        if meta.exists():
            out.update(json.loads(meta.read_text())["exit_code_by_key"])
    return out


def forget_results(targets: Iterable[Target], names: set[str]) -> None:
    """Clear earlier verdicts of the mutants about to run, so a mutant a cut-short run did not reach is
    reported as not run rather than with a stale verdict."""
    for path in {t.path for t in targets}:
        meta = ROOT / "mutants" / f"{path}.meta"
        if not meta.exists():
            continue
        data = json.loads(meta.read_text())
        codes = data["exit_code_by_key"]
        for name in codes:
            if name in names:
                codes[name] = None
        meta.write_text(json.dumps(data, indent=4))


def run_mutmut(all_targets: list[Target], selected: list[Target], names: list[str], args: argparse.Namespace) -> int:
    # Both settings are the same for every run, whatever is selected: mutmut throws away every cached
    # verdict when its test selection changes, and regenerates nothing for a file it once copied unmutated.
    # It still runs, per mutant, only the tests that reach the mutated function.
    spec = {
        "only_mutate": sorted({t.path for t in all_targets}),
        "tests": sorted({test for t in all_targets for test in t.tests}),
    }
    cmd = [sys.executable, str(Path(__file__).resolve()), "--mutmut-child", json.dumps(spec), "run"]
    cmd += ["--max-children", str(args.max_children), *names]
    LOG_FILE.parent.mkdir(exist_ok=True)
    print(f"mutmut: {len(names)} mutants of {len(selected)} module(s); log: {LOG_FILE.relative_to(ROOT)}", flush=True)
    with LOG_FILE.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            return proc.wait(timeout=args.budget)
        except subprocess.TimeoutExpired:
            print(f"budget of {args.budget} s spent: stopping mutmut (mutants not reached are 'not run')")
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            return 0


def mutmut_child(spec_json: str, argv: list[str]) -> None:
    """Runs in the subprocess: mutmut's CLI with this run's module and test selection."""
    os.chdir(ROOT)
    spec = json.loads(spec_json)
    import mutmut.configuration as configuration

    cfg = configuration.config()
    cfg.only_mutate = spec["only_mutate"]
    cfg.pytest_add_cli_args_test_selection = spec["tests"]
    from mutmut.__main__ import cli

    cli(argv, prog_name="mutmut")


def report(selected: list[Target], names: list[str], recorded: dict[str, Equivalent]) -> bool:
    """Print the table; True when the run meets the bar. Only records whose fingerprint still matches
    count as equivalent."""
    results = read_results(selected)
    equivalents, stale = reviewed(selected, recorded)
    header = (
        f"{'module':<58} {'mutants':>7} {'killed':>6} {'survived':>8} {'equiv':>5} {'timeout/susp':>12} "
        f"{'not run':>7} {'kill %':>7} {'raw %':>7}"
    )
    print()
    print(header)
    print("-" * len(header))
    totals = dict.fromkeys(("mutants", "killed", "survived", "equiv", "timeout", "susp", "notrun"), 0)
    unresolved: list[str] = []

    def row(label: str, c: dict[str, int]) -> None:
        ran = c["mutants"] - c["notrun"]
        detected = c["killed"] + c["timeout"]
        pct = 100.0 * detected / (ran - c["equiv"]) if ran - c["equiv"] else 100.0
        raw = 100.0 * detected / ran if ran else 100.0
        print(
            f"{label:<58} {c['mutants']:>7} {c['killed']:>6} {c['survived']:>8} {c['equiv']:>5} "
            f"{str(c['timeout']) + '/' + str(c['susp']):>12} {c['notrun']:>7} {pct:>6.1f}% {raw:>6.1f}%"
        )

    for target in selected:
        mine = [n for n in names if target.owns(n)]
        c = dict.fromkeys(totals, 0)
        c["mutants"] = len(mine)
        for name in mine:
            status = status_of(results.get(name))
            if status == KILLED:
                c["killed"] += 1
                if name in equivalents:
                    stale.append(f"{name}: recorded as equivalent but killed")
            elif status == TIMEOUT:
                c["timeout"] += 1
            elif status == NOT_RUN:
                c["notrun"] += 1
            elif name in equivalents:
                c["equiv"] += 1
            else:
                c["survived" if status == SURVIVED else "susp"] += 1
                unresolved.append(f"{name} ({status})")
        for key in totals:
            totals[key] += c[key]
        row(target.label, c)
    print("-" * len(header))
    row("overall", totals)
    ran = totals["mutants"] - totals["notrun"]
    detected = totals["killed"] + totals["timeout"]
    pct = 100.0 * detected / (ran - totals["equiv"]) if ran - totals["equiv"] else 100.0
    print(
        "\nkill % = (killed + timeout) / (mutants run - recorded equivalents); raw % counts equivalents as "
        "not killed. 'survived' lists only survivors not recorded in mutation/equivalent/."
    )
    if stale:
        print("\nStale entries in mutation/equivalent/, not counted as equivalent (remove or update them):")
        for line in sorted(stale):
            print(f"  {line}")
    if unresolved:
        print("\nSurvivors neither killed nor recorded as equivalent (see: .venv/bin/mutmut show <name>):")
        for line in sorted(unresolved):
            print(f"  {line}")
    ok = not unresolved and pct >= TARGET_PERCENT
    verdict = "OK" if ok else "FAILED"
    print(f"\n{verdict}: {pct:.1f}% killed (target {TARGET_PERCENT:.0f}%), {len(unresolved)} unresolved")
    return ok


def print_fingerprints(targets: list[Target], names: list[str]) -> int:
    """The start of an equivalent line for each named mutant of the current code."""
    unknown = 0
    for name in names:
        owners = [t for t in targets if t.owns(name)]
        fp = generated(owners).get(name) if owners else None
        if fp is None:
            print(f"{name}: no such mutant of a module in {MODULES_FILE.relative_to(ROOT)}", file=sys.stderr)
            unknown += 1
        else:
            print(f"{name}  {fp}")
    return 1 if unknown else 0


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--mutmut-child":
        mutmut_child(sys.argv[2], sys.argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="module paths or dotted names (default: all of modules.txt)")
    parser.add_argument("--changed-since", metavar="REV")
    parser.add_argument("--sample", type=int, metavar="N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, metavar="SECONDS")
    parser.add_argument("--max-children", type=int, default=1)
    parser.add_argument("--ci", action="store_true")
    parser.add_argument("--report", action="store_true", help="only print the table of the last results")
    parser.add_argument(
        "--fingerprint", nargs="+", metavar="NAME", help="print '<name>  <fingerprint>' to record NAME as equivalent"
    )
    args = parser.parse_args()

    all_targets = load_targets()
    if args.fingerprint:
        return print_fingerprints(all_targets, args.fingerprint)
    equivalents = load_equivalents()
    selected = all_targets
    if args.modules:
        wanted = set(args.modules)
        selected = [t for t in all_targets if wanted & {t.path, t.module, t.label}]
        if len(selected) < len(wanted):
            missing = wanted - {x for t in selected for x in (t.path, t.module, t.label)}
            sys.exit(f"not in {MODULES_FILE.relative_to(ROOT)}: {', '.join(sorted(missing))}")
    if args.ci:
        base = git("merge-base", "HEAD", "origin/main") if git("rev-parse", "--verify", "-q", "origin/main") else None
        changed = changed_targets(selected, base) if base is not None else []
        if changed:
            selected = changed
            print(f"ci: decision modules changed since {str(base)[:12]} (merge-base with origin/main): {len(selected)}")
        elif base is not None:
            print("ci: no decision module changed since origin/main, so a fixed-seed sample of every one")
        else:
            print("ci: no origin/main, so a fixed-seed sample of every decision module")
        args.budget = args.budget or CI_BUDGET
        args.seed = CI_SEED if args.sample is None else args.seed
        args.sample = args.sample or CI_SAMPLE
    elif args.changed_since:
        selected = changed_targets(selected, args.changed_since)
        print(f"decision modules changed since {args.changed_since}: {len(selected)}")
    if not selected:
        print("no decision module selected: nothing to do")
        return 0

    names = mutant_names(selected)
    if args.sample is not None and args.sample < len(names):
        names = sorted(random.Random(args.seed).sample(names, args.sample))
        print(f"sample: {len(names)} mutants, seed {args.seed}")
    if not args.report:
        started = time.monotonic()
        forget_results(selected, set(names))
        code = run_mutmut(all_targets, selected, names, args)
        print(f"mutmut finished in {time.monotonic() - started:.0f} s (exit {code})")
        if code != 0:
            print(LOG_FILE.read_text()[-4000:])
            print("mutmut failed: see the log above")
            return 2
    return 0 if report(selected, names, equivalents) else 1


if __name__ == "__main__":
    sys.exit(main())
