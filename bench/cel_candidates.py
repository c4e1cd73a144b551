"""Measures the CEL implementations on PyPI that could run Takan's rules.

For one library in the running interpreter: correctness on a few expressions the rules
need (has(), size(), macros, string functions, maps, errors), the time to compile and to
evaluate a realistic set of 10 rules on realistic facts, and whether a long evaluation in
a worker thread lets other threads (the event loop) run. The results are in
``approval/rules/README.md``.

Some candidates install the same module name (``cel``), so each gets its own venv::

    for p in cel-python common-expression-language cel-expr-python python-cel celparser; do
        .venv/bin/python -m venv /tmp/cv-$p && /tmp/cv-$p/bin/pip install -q $p
        /tmp/cv-$p/bin/python bench/cel_candidates.py $p
    done
"""

from __future__ import annotations

import importlib.metadata
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

FACTS: dict[str, Any] = {
    "item_code": "pharmacy-retail-license",
    "checkpoints": {
        code: {"required": required, "captured": captured, "stills": stills, "photos": photos}
        for code, required, captured, stills, photos in [
            ("storefront", True, True, 1, 0),
            ("sales_area", True, True, 2, 0),
            ("prescription_separation", True, True, 1, 1),
            ("temperature_humidity", True, True, 1, 0),
            ("cold_chain", False, False, 0, 0),
            ("pharmacist_certificate", True, True, 0, 1),
            ("special_drug_cabinet", True, True, 1, 0),
        ]
    },
    "required_missing": [],
    "stills": 6,
    "photos": 2,
    "signatures": {"applicant": True, "inspector": True},
    "duration_s": 1312.4,
    "within_time_limit": True,
    "distance_m": 42.7,
    "site_radius_m": 200.0,
    "location_reported": True,
    "reconnections": 1,
    "timer_warnings": 1,
    "warnings": [{"list": "abnormal-operation", "match": "某某大药房"}],
}
FACTS["facts"] = dict(FACTS)

RULES = [
    "size(required_missing) == 0",
    "checkpoints.all(c, !checkpoints[c].required || checkpoints[c].captured)",
    '"applicant" in signatures && signatures.applicant',
    "has(signatures.inspector) && signatures.inspector",
    "location_reported",
    "!location_reported || distance_m <= site_radius_m",
    "within_time_limit || (has(facts.overtime_reason) && size(facts.overtime_reason) >= 4)",
    '!warnings.exists(w, w.list in ["dishonest-entity", "market-access-negative"])',
    "reconnections <= 3",
    (
        "checkpoints.prescription_separation.stills >= 1"
        " && checkpoints.pharmacist_certificate.stills + checkpoints.pharmacist_certificate.photos >= 1"
    ),
]

# (expression, expected): True, or "error" for an evaluation error (not a crash, not a value)
CORRECTNESS: list[tuple[str, Any]] = [
    ("has(facts.distance_m)", True),
    ("!has(facts.overtime_reason)", True),
    ('size("药店执业") == 4', True),  # code points, not bytes
    ("size(checkpoints) == 7", True),
    ("checkpoints.exists(c, !checkpoints[c].captured)", True),
    ("[1, 2, 3].exists_one(x, x > 2)", True),
    ("size([1, 2, 3].filter(x, x > 1)) == 2", True),
    ("[1, 2].map(x, x * 2) == [2, 4]", True),
    ('"食品经营许可".startsWith("食品") && "abc".endsWith("c") && "abc".contains("b")', True),
    ('item_code.matches("^[a-z-]+$")', True),
    ('{"a": 1}["a"] == 1 && "a" in {"a": 1}', True),
    ("distance_m <= 200", True),  # double against int
    ("1 < 2.5", True),  # int against double
    ("true || 1 / 0 == 1", True),  # an error absorbed by ||
    ("1 / 0 == 1", "error"),
    ("undeclared_fact > 1", "error"),
    ("signatures.notary", "error"),  # no such key
]


def adapter(lib: str) -> tuple[Callable[[str], Any], Callable[[dict[str, Any]], Any], Callable[[Any, Any], Any]]:
    """(compile, bind facts, run) for one library; run raises on an evaluation error."""
    if lib == "cel-python":
        import celpy

        env = celpy.Environment()

        def run_celpy(program: Any, activation: Any) -> Any:
            result = program.evaluate(activation)
            if isinstance(result, celpy.CELEvalError):
                raise RuntimeError(result)
            return result

        return (lambda e: env.program(env.compile(e)),
                lambda f: {k: celpy.json_to_cel(v) for k, v in f.items()}, run_celpy)
    if lib == "common-expression-language":
        import cel

        return cel.compile, cel.Context, lambda p, a: p.execute(a)
    if lib == "python-cel":
        import cel

        def run_python_cel(program: Any, activation: Any) -> Any:
            try:
                return program.execute(activation)
            except BaseException as exc:  # noqa: BLE001 - a Rust panic is a BaseException
                raise RuntimeError(f"{type(exc).__name__}: {exc}") from None

        return cel.Program, cel.Context, run_python_cel
    if lib == "cel-expr-python":
        from cel_expr_python import cel

        env = cel.NewEnv(variables={name: cel.Type.DYN for name in [*FACTS, "big"]})

        def run_cpp(program: Any, activation: Any) -> Any:
            result = program.eval(activation)
            if result.type() == cel.Type.ERROR:
                raise RuntimeError(result.value())
            return result.value()

        return env.compile, env.Activation, run_cpp
    if lib == "celparser":
        import celparser

        return celparser.compile, lambda f: f, lambda p, a: p(a)
    raise SystemExit(f"unknown library {lib!r}")


def main(lib: str) -> None:
    compile_, bind, run = adapter(lib)
    print(f"## {lib} {importlib.metadata.version(lib)}")

    good = 0
    for expr, want in CORRECTNESS:
        try:
            got: Any = run(compile_(expr), bind(FACTS))
            right = want is True and got is not None and type(got).__name__.lower().startswith("bool") and bool(got)
        except BaseException as exc:  # noqa: BLE001 - a panic counts as a wrong answer too
            got = f"error: {type(exc).__name__}: {str(exc)[:100]}"
            right = want == "error" and "Panic" not in got  # a Rust panic is a crash, not an error value
        good += right
        if not right:
            print(f"  WRONG {expr!r}: got {got!r}, want {want!r}")
    print(f"correctness {good}/{len(CORRECTNESS)}")

    try:
        rounds = 20
        start = time.perf_counter()
        for _ in range(rounds):
            programs = [compile_(rule) for rule in RULES]
        compile_ms = (time.perf_counter() - start) / rounds * 1000
        assert all(run(p, bind(FACTS)) is not None and bool(run(p, bind(FACTS))) for p in programs)
        times = []
        for _ in range(1000 if lib == "cel-python" else 5000):
            start = time.perf_counter()
            activation = bind(FACTS)
            for program in programs:
                run(program, activation)
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        print(f"compile 10 rules {compile_ms:.3f} ms; evaluate 10 rules incl. binding the facts: "
              f"p50 {times[len(times) // 2]:.3f} ms, p99 {times[int(len(times) * 0.99)]:.3f} ms")
    except BaseException as exc:  # noqa: BLE001
        print(f"rule set failed: {type(exc).__name__}: {str(exc)[:200]}")

    # A long evaluation (RE2 over long strings) in a worker thread, the main thread waking
    # every millisecond: a library that holds the GIL stalls the main thread throughout.
    try:
        program = compile_('big.all(s, !s.matches("a*b"))')
        activation = bind({"big": ["a" * 200_000 + "c"] * 500})
        done = threading.Event()
        took: list[float] = []

        def work() -> None:
            begin = time.perf_counter()
            run(program, activation)
            took.append(time.perf_counter() - begin)
            done.set()

        worker = threading.Thread(target=work)
        last = time.perf_counter()
        longest = 0.0
        wakes = 0
        worker.start()
        while not done.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            longest, last, wakes = max(longest, now - last), now, wakes + 1
        worker.join()
        print(f"long evaluation {took[0] * 1000:.0f} ms in a thread: main thread woke {wakes} times, "
              f"longest stall {longest * 1000:.0f} ms")
    except BaseException as exc:  # noqa: BLE001
        print(f"long evaluation failed: {type(exc).__name__}: {str(exc)[:200]}")


if __name__ == "__main__":
    main(sys.argv[1])
