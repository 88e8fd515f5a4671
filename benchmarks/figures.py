"""Every figure the documents quote, rendered from the committed results in ``results/*.json``.

A document marks each generated block with a pair of HTML comments::

    <!-- pass-cost:begin -->
    ...text rendered by the block "pass-cost"; edits here are overwritten...
    <!-- pass-cost:end -->

``BLOCKS`` maps a block name to its render function ``(Results) -> markdown``; a new table or
paragraph plugs in with ``@block("name")``. ``refresh`` rewrites the marked blocks of
``DOCUMENTS`` in place; ``stale`` lists the blocks whose committed text differs from a fresh
rendering (a test fails on any). Prose that interprets a number is rendered from the same
numbers, so a claim such as "fails on six of seven models" changes with the results.

    python benchmarks/figures.py            # rewrite every block from results/
    python benchmarks/figures.py --check    # exit 1 and name every stale block
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))     # common.py beside this file
from common import db_text as db, truncated_pct  # noqa: E402

ROOT = HERE.parent
RESULTS = HERE / "results"
DOCUMENTS = (ROOT / "README.md", HERE / "README.md", ROOT / "docs" / "placement.md")
MARKER = re.compile(r"<!-- ([a-z0-9-]+):begin -->\n(.*?)<!-- \1:end -->", re.S)


def load_script(path: Path) -> Any:
    """Import the benchmark script at ``path`` as module ``benchmarks_<stem>``."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class FiguresError(Exception):
    """A document names a block nobody renders, or a block needs results that are missing."""


class Results:
    """``results["bench_passes"]`` -> the parsed ``results/bench_passes.json`` (read once)."""

    def __init__(self, directory: Path = RESULTS):
        self.directory = Path(directory)
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._cache:
            path = self.directory / f"{name}.json"
            if not path.is_file():
                raise FiguresError(f"{path}: no such results file (run benchmarks/{name}.py)")
            self._cache[name] = json.loads(path.read_text())
        return self._cache[name]


Render = Callable[[Results], str]
BLOCKS: dict[str, Render] = {}


def block(name: str) -> Callable[[Render], Render]:
    def register(fn: Render) -> Render:
        BLOCKS[name] = fn
        return fn
    return register


# --------------------------------------------------------------------------- formatting
def span(values: list[float], fmt: Callable[[float], str], unit: str = "") -> str:
    """'lo to hi' (one value when both print alike; '–' for none)."""
    if not values:
        return "–"
    lo, hi = min(values), max(values)
    return f"{fmt(lo)}{unit}" if fmt(lo) == fmt(hi) else f"{fmt(lo)} to {fmt(hi)}{unit}"


def count(k: int, n: int) -> str:
    """'all 6', '5 of 6', 'none of 6'."""
    return f"all {n}" if k == n else ("none of " + str(n) if k == 0 else f"{k} of {n}")


def provenance(*results: dict) -> str:
    """A note when any of the results was measured on a tree with uncommitted changes."""
    dirty = sorted({r.get("revision") or "?" for r in results
                    if r.get("dirty") or str(r.get("revision", "")).endswith("+dirty")})
    if not dirty:
        return ""
    return f"\n_Measured on a tree with uncommitted changes (revision {', '.join(dirty)})._\n"


# --------------------------------------------------------------------------- precision policies
POLICY_LABELS = {"float32": "FLOAT32", "fp16": "default fp16", "seed_pow_sqrt": "seed pow→sqrt",
                 "autocast_list": "autocast list", "milguard": "milguard", "milguard_calibrated": "milguard calibrated",
                 "milguard_fp32": "milguard fp32 islands"}
RSQRT_NORM_MODELS = {"llama_decoder", "t5_encoder", "gemma_decoder"}    # RMSNorm as x * rsqrt(mean(x^2) + eps)


def _snr(row: dict) -> float:
    v = row.get("snr_db")
    return float(v) if isinstance(v, str) else v


def _cell(row: dict) -> str:
    if not row or "error" in row:
        return "error"
    text = db(row.get("snr_db"))
    text = f"**{text}**" if row.get("accurate") else text
    share = row.get("flops_fp16_share")
    return text if share is None else f"{text} ({truncated_pct(share)})"


def _x(x: float) -> str:
    return f"{x:.2f}x"


@block("benchmarks")
def headline(results: Results) -> str:
    """Per zoo model and policy: output SNR (dB) and the share of FLOPs left in fp16."""
    data = results["bench_policies"]
    keys = list(data["models"][0]["policies"])
    head = "| model | " + " | ".join(POLICY_LABELS.get(k, k) for k in keys) + " |"
    lines = [f"Output SNR in dB against torch fp32 on inputs with planted activation magnitudes from the "
             f"literature (bold: finite and >= {data['verdicts']['accurate_db']:.0f} dB), and in parentheses the "
             f"share of FLOPs still computed in fp16 (truncated, not rounded); zoo size {data.get('size', 'small')}; "
             "see `benchmarks/results/bench_policies.md`.", "", head, "|---|" + "---:|" * len(keys)]
    for m in data["models"]:
        lines.append(f"| {m['model']} | " + " | ".join(_cell(m["policies"].get(k, {})) for k in keys) + " |")
    return "\n".join(lines) + "\n" + provenance(data)


class Policies:
    """The policy results with the questions the prose asks of them."""

    def __init__(self, results: Results):
        self.data = results["bench_policies"]
        self.models = self.data["models"]
        self.failing = [m for m in self.models if not m["policies"]["fp16"].get("accurate")]
        self.verdicts = {r["model"]: r for r in self.data["verdicts"]["per_model"]}

    def col(self, policy: str, key: str, among: list[dict] | None = None) -> list[Any]:
        return [m["policies"][policy].get(key) for m in (self.models if among is None else among)]

    def snrs(self, policy: str, among: list[dict] | None = None) -> list[float]:
        return [_snr(m["policies"][policy]) for m in (self.models if among is None else among)]

    def accurate(self, policy: str, among: list[dict] | None = None) -> int:
        return sum(bool(m["policies"][policy].get("accurate")) for m in (self.models if among is None else among))

    def silent(self) -> int:
        return sum(m["policies"]["fp16"].get("nonfinite") == 0 for m in self.failing)

    def verdict(self, key: str) -> list[Any]:
        return [self.verdicts[m["model"]][key] for m in self.models]


@block("policies-summary")
def policies_summary(results: Results) -> str:
    p = Policies(results)
    n, k = len(p.models), len(p.failing)
    f32 = span(p.snrs("float32"), db)
    if not k:
        return (f"Default fp16 is accurate on all {n} models, so there is nothing for milguard to repair; FLOAT32 "
                f"reaches {f32} dB.\n" + provenance(p.data))
    v = p.data["verdicts"]
    ratios = [r for r in p.verdict("cost_ratio") if r is not None]
    text = (f"Default fp16 is not accurate on {count(k, n)} models ({span(p.snrs('fp16', p.failing), db)} dB)"
            + (f", {'always' if p.silent() == k else f'{p.silent()} times'} silently (no inf or NaN reaches the "
               "output)" if p.silent() else "") + ". "
            f"`milguard.pipeline()`, with no data, is accurate on {count(p.accurate('milguard', p.failing), k)} of "
            f"them ({span(p.snrs('milguard', p.failing), db)} dB), within {v['floor_margin_db']:.0f} dB of the fp16 "
            f"floor in both accumulation modes on {count(sum(p.verdict('within_floor')), n)} models (the SNR default "
            f"fp16 reaches on the same model fed ordinary inputs: {span([m['fp16_floor_db'] for m in p.models], db)} "
            f"dB), keeps {span(p.col('milguard', 'flops_fp16_share'), truncated_pct)} of the FLOPs in fp16 "
            f"({sum(p.col('milguard', 'rescaled'))} regions rescaled fp16-safely, "
            f"{sum(p.col('milguard', 'islands'))} kept fp32), adds no Neural Engine transition to default fp16's on "
            f"{v['models_without_extra_transitions']} of {n}, and costs {span(ratios, _x)} default fp16's "
            f"relative cost (within {v['cost_ratio_limit']:.2f}x on {sum(p.verdict('cost_within'))} of {n}). "
            f"FLOAT32 ({f32} dB) is only reachable by giving up fp16 entirely.")
    return text + "\n" + provenance(p.data)


@block("policies-findings")
def policies_findings(results: Results) -> str:
    p = Policies(results)
    n, k = len(p.models), len(p.failing)
    v = p.data["verdicts"]
    if not k:
        return f"- Default fp16 is accurate on all {n} models.\n" + provenance(p.data)
    fp16_cost = {m["model"]: m["policies"]["fp16"].get("relative_cost") for m in p.models}

    def cost_ratios(policy: str) -> list[float]:
        return [m["policies"][policy]["relative_cost"] / fp16_cost[m["model"]] for m in p.models
                if m["policies"][policy].get("relative_cost") and fp16_cost[m["model"]]]

    def extra(policy: str) -> list[int]:
        return [(m["policies"][policy].get("transitions") or 0) - (m["policies"]["fp16"].get("transitions") or 0)
                for m in p.models]

    over = [r["model"] for r in v["per_model"] if r["cost_ratio"] is not None and not r["cost_within"]]
    lines = [f"- Default fp16 is not accurate on {count(k, n)} models: {span(p.snrs('fp16', p.failing), db)} dB"
             + (f", and on {count(p.silent(), k)} of them **silently**: no inf or NaN reaches the output, because "
                "`rsqrt(inf) = 0` (or `x / sqrt(inf) = 0`) zeroes the tokens whose squares overflowed." if p.silent()
                else "."),
             f"- The default `milguard.pipeline()` (`remedy=\"auto\"`, no data) is accurate on "
             f"{count(p.accurate('milguard', p.failing), k)} of those: {span(p.snrs('milguard', p.failing), db)} dB "
             f"({span([_snr({'snr_db': x}) for x in p.col('milguard', 'snr_db_fp16_accumulate', p.failing)], db)} dB "
             f"with fp16 accumulation); within {v['floor_margin_db']:.0f} dB of the fp16 floor in both modes on "
             f"{count(sum(p.verdict('within_floor')), n)} models; {sum(p.col('milguard', 'rescaled'))} regions "
             f"rescaled fp16-safely and {sum(p.col('milguard', 'islands'))} kept fp32 over the {n} models, "
             f"{span(p.col('milguard', 'flops_fp16_share'), truncated_pct)} of the FLOPs in fp16; no extra Neural "
             f"Engine transition on {v['models_without_extra_transitions']} of {n}; relative cost "
             f"{span(cost_ratios('milguard'), _x)} default fp16's"
             + (f", above the {v['cost_ratio_limit']:.2f}x bar on {', '.join(over)}." if over else "."),
             f"- Calibrated on the evaluated input, milguard is accurate on "
             f"{count(p.accurate('milguard_calibrated', p.failing), k)} ({span(p.snrs('milguard_calibrated', p.failing), db)} "
             f"dB) with {sum(p.col('milguard_calibrated', 'rescaled'))} regions rescaled and "
             f"{sum(p.col('milguard_calibrated', 'islands'))} kept fp32.",
             f"- fp32 islands for every region (`remedy=\"fp32\"`): {span(p.snrs('milguard_fp32', p.failing), db)} dB, "
             f"{span(p.col('milguard_fp32', 'flops_fp16_share'), truncated_pct)} of the FLOPs in fp16, "
             f"{span([float(x) for x in extra('milguard_fp32')], lambda x: f'{x:.0f}')} extra Neural Engine transitions "
             f"and {span(cost_ratios('milguard_fp32'), _x)} default fp16's relative cost."]
    seed_zero = sorted(m["model"] for m in p.models if m["policies"]["seed_pow_sqrt"]["flops_fp16_share"] < 0.01)
    seed = f"- The seed's pow→sqrt selector is accurate on {count(p.accurate('seed_pow_sqrt'), n)} models"
    if seed_zero:
        seed += f", but keeps **under 1%** of the FLOPs in fp16 on {', '.join(seed_zero)}"
        if set(seed_zero) == RSQRT_NORM_MODELS:
            seed += (": those RMSNorms use `rsqrt`, so no `sqrt` ever closes its window and everything after the "
                     "first `pow` stays fp32")
    lines.append(seed + ".")
    auto_fail = k - p.accurate("autocast_list", p.failing)
    lines.append(f"- The autocast-style op list is not accurate on {auto_fail} of the {k} models default fp16 fails on "
                 f"({span(p.snrs('autocast_list', p.failing), db)} dB).")
    lines += _minilm_finding(p)
    return "\n".join(lines) + "\n" + provenance(p.data)


def _minilm_finding(p: Policies) -> list[str]:
    """MiniLM (trained weights, real sentences): default fp16, the measured LayerNorm inputs, placement."""
    m = next((m for m in p.models if m["model"] == "minilm"), None)
    if m is None:
        return []
    from milguard.fp16 import SQUARE_LIMIT
    from milguard.zoo import minilm

    ranges = {k.split(":", 1)[1]: val for k, val in minilm.measured_ranges()["max_abs"].items()
              if k.startswith("norm_input:")}
    where, peak = max(ranges.items(), key=lambda kv: kv[1])
    pol = m["policies"]
    fp16, islands = pol["fp16"], pol["milguard_fp32"]
    text = (f"- MiniLM with its trained weights on real sentences: default fp16 gives {db(fp16['snr_db'])} dB "
            f"({'accurate' if fp16.get('accurate') else 'not accurate'}); the largest LayerNorm input is {peak:.1f} "
            f"(`{where}`), {peak / SQUARE_LIMIT:.0%} of the fp16 square limit of {SQUARE_LIMIT:.1f}. fp32 islands "
            f"there would cost {islands['transitions']} device transitions and "
            f"{islands['relative_cost'] / fp16['relative_cost']:.1f}x default fp16's relative cost "
            f"({islands['relative_cost']:.0f} vs {fp16['relative_cost']:.0f}; FLOAT32: "
            f"{pol['float32']['relative_cost']:.0f}).")
    cal = p.data.get("minilm_calibrated")
    if cal:
        text += (f" Calibrated on its {cal['samples']} sentences, milguard remedies {cal['rescaled'] + cal['islands']} "
                 f"regions and the program {'equals' if cal['equal_op_for_op'] else 'differs from'} the default "
                 f"conversion op for op ({cal['ops']} ops).")
    return [text]


@block("peers")
def peers(results: Results) -> str:
    """The peer comparison and its findings, formatted by ``bench_peers.readme_table`` from its results."""
    data = results["bench_peers"]
    return load_script(HERE / "bench_peers.py").readme_table(data) + provenance(data)


# --------------------------------------------------------------------------- speed
PASS_COST_TARGET = 0.10     # milguard's passes against the default pipeline (bench_passes' docstring)


@block("pass-cost")
def pass_cost(results: Results) -> str:
    data = results["bench_passes"]
    rows, s = data["rows"], data["summary"]
    e2e, e2e_s = data.get("end_to_end", {}), data.get("end_to_end_summary", {})
    out = []
    if "programs" in e2e_s:
        prog = e2e["programs"]
        out.append(
            f"End to end, `ct.convert` with `milguard.pipeline()` against the default pipeline (interleaved, best of "
            f"{span([r['rounds'] for r in prog], str)} conversions each): "
            f"{span([r['ratio_cpu'] - 1 for r in prog], lambda x: f'{x:+.1%}')} process CPU time "
            f"({span([r['ratio'] - 1 for r in prog], lambda x: f'{x:+.1%}')} wall) on synthetic LLaMA programs of "
            f"{span([r['ops'] for r in prog], lambda x: f'{x / 1000:.0f}k')} ops")
        if "zoo" in e2e_s:
            z = e2e_s["zoo"]
            out[-1] += (f", {z['ratio_cpu']['min'] - 1:+.0%} to {z['ratio_cpu']['max'] - 1:+.0%} CPU "
                        f"({z['ratio']['min'] - 1:+.0%} to {z['ratio']['max'] - 1:+.0%} wall) on the "
                        f"{len(e2e['zoo'])} traced zoo models ({e2e['zoo'][0].get('size', 'small')} size)")
        out[-1] += "."
    shares = [r["in_pipeline_share"] for r in rows if "in_pipeline_share" in r]
    if shares:
        timed = [r for r in rows if "in_pipeline_share" in r]
        out.append(f"Inside that pipeline milguard's own {len(data.get('passes', [])) or 'four'} passes take "
                   f"{span(shares, lambda x: f'{x:.1%}')} of it "
                   f"({span([r['ops'] for r in timed], lambda x: f'{x / 1000:.0f}k')} ops); this leaves out what they "
                   "cost the passes after them.")
    ratios = [r["milguard_over_default"] for r in rows if "milguard_over_default" in r]
    if ratios:
        met = max(ratios) <= PASS_COST_TARGET
        out.append(f"Standalone, as separate pipeline runs with their own validation, they take "
                   f"{span(ratios, lambda x: f'{x:.1%}')} of `ct.PassPipeline.DEFAULT` (target: under "
                   f"{PASS_COST_TARGET:.0%}, {'met' if met else 'not met'}).")
    e = s["exponent"]
    big = rows[-1]
    out.append(f"Growth exponent of the standalone passes {e['milguard_s']:.2f} from {rows[0]['ops'] / 1000:.0f}k to "
               f"{big['ops'] / 1000:.0f}k ops (keep_fp32_* {e['keep_fp32_s']:.2f}, apply_fp32_islands "
               f"{e['apply_islands_s']:.2f}) against {e['default_s']:.2f} for the default pipeline; "
               f"{big['milguard_s']:.1f} s at {big['ops'] / 1000:.0f}k ops.")
    return " ".join(out) + "\n" + provenance(data)


@block("find-patterns-speed")
def find_patterns_speed(results: Results) -> str:
    data = results["engine"]
    parts = [f"{r['find_patterns_s'] * 1e3:.0f} ms on {r['ops'] / 1000:.0f}k ops" if r["find_patterns_s"] < 1
             else f"{r['find_patterns_s']:.1f} s on {r['ops'] / 1000:.0f}k" for r in data["rows"]]
    return (f"`find_patterns` takes {', '.join(parts[:-1])} and {parts[-1]} (growth exponent {data['exponent']:.2f}; "
            "`benchmarks/results/engine.md`).\n" + provenance(data))


@block("executor-speed")
def executor_speed(results: Results) -> str:
    data = results["executor"]
    rows = {r["config"]: r for r in data["rows"]}
    zoo = data.get("zoo", [])
    text = (f"The reference executor against torch eager on CPU (median wall ratio, median CPU ratio in parentheses): "
            f"on {data['model']}, the prepared executor takes {rows['fp32']['ratio_median']:.2f}x "
            f"({rows['fp32']['ratio_cpu']:.2f}x) torch's time on the fp32 program and "
            f"{rows['fp16']['ratio_median']:.2f}x ({rows['fp16']['ratio_cpu']:.2f}x) on the fp16 one, and a one-shot "
            f"`milguard.run` {rows['run() one-shot, fp16']['ratio_median']:.2f}x "
            f"({rows['run() one-shot, fp16']['ratio_cpu']:.2f}x) on the fp16 one.")
    if zoo:
        text += (f" On the {len(zoo)} small programs of the zoo (one layer or block, default fp16 conversion) the "
                 f"prepared executor takes {span([z['prepared_median'] for z in zoo], lambda x: f'{x:.1f}')}x "
                 f"({span([z['prepared_cpu'] for z in zoo], lambda x: f'{x:.1f}')}x) and a one-shot `milguard.run`, "
                 f"which prepares first, {span([z['one_shot_median'] for z in zoo], lambda x: f'{x:.1f}')}x "
                 f"({span([z['one_shot_cpu'] for z in zoo], lambda x: f'{x:.1f}')}x): for repeated runs, "
                 "`milguard.executor.prepare` once.")
    return text + "\n" + provenance(data)


@block("placement-speed")
def placement_speed(results: Results) -> str:
    data = results["placement"]
    rows = data["rows"]
    big = rows[-1]
    return (f"`benchmarks/bench_placement.py` measures them on synthetic LLaMA-shaped programs of "
            f"{rows[0]['ops'] / 1000:.0f}k to {big['ops'] / 1000:.0f}k ops (results in "
            f"`benchmarks/results/placement.md`): {span([r['predict_us_per_op'] for r in rows], lambda x: f'{x:.0f}')} "
            f"µs per op for `predict` and {span([r['summarize_us_per_op'] for r in rows], lambda x: f'{x:.0f}')} for "
            f"`summarize`, growth exponents {data['k_predict']:.2f} and {data['k_summarize']:.2f}; "
            f"{big['predict_s']:.2f} s and {big['summarize_s']:.2f} s at {big['ops'] / 1000:.0f}k ops.\n"
            + provenance(data))


@block("copy-cost")
def copy_cost(results: Results) -> str:
    data = results["copy"]
    big = max((r for r in data["rows"] if isinstance(r["layers"], int)), key=lambda r: r["ops"])
    failing = [r["ops"] for r in data["rows"] if r["deepcopy_default_limit"] != "ok"]
    scoped = [r for r in data["rows"] if r["with_module_path"]]
    exact = all(r["copy_program_exact"] for r in data["rows"])
    text = (f"copy_program is {'exact at every size' if exact else 'NOT exact at every size'}; at "
            f"{big['ops']:,} ops it takes {big['copy_program_s']:.1f} s against {big['deepcopy_s']:.1f} s for deepcopy "
            f"and {big['milproto_s']:.1f} s for the milproto round trip")
    if failing:
        text += f"; deepcopy fails at the default recursion limit from {min(failing):,} ops on"
    if scoped:
        z = scoped[0]
        text += (f"; the round trip drops the torch scopes ({z['with_module_path']} module paths -> "
                 f"{z['milproto_module_paths']})")
    return text + ".\n" + provenance(data)


@block("cli-speed")
def cli_speed(results: Results) -> str:
    data = results["cli"]
    start, ph = data["startup"], data["phases"]
    fast = [v for k, v in start.items() if k.startswith(("milguard ", "argument error"))]
    fix = f"{ph['cli_fix_s']:.1f} s" if "cli_fix_s" in ph else f"failed ({ph.get('cli_fix_error', 'not run')})"
    return (f"`milguard --help`, `--version` and an argument error answer in {span(fast, lambda x: f'{x:.2f}')} s "
            f"(`import coremltools` alone: {start['import coremltools']:.1f} s). On the {data['layers']}-layer program "
            f"({data['ops']:,} ops), with everything imported: the analysis {ph['analysis_cold_s']:.2f} s cold and "
            f"{ph['analysis_s']:.2f} s warm, `milguard audit` {ph['cli_audit_s']:.1f} s and `milguard fix` "
            f"{fix} in-process, against {data['convert_s']:.1f} s for `ct.convert` of the same "
            f"model; the console script end to end {ph['console_audit_s']:.1f} s.\n" + provenance(data))


# --------------------------------------------------------------------------- placement agreement
def agreement_sentence(data: dict) -> str:
    h = data["held_out"]
    if not h["compared"]:
        return ("Placement prediction is **not validated**: no published `MLComputePlan` observation is held out "
                "from the sources its rules were set from.")
    return (f"Placement prediction agrees with {h['correct']} of {h['compared']} ops ({h['accuracy']:.0%}) in "
            f"{h['observations']} published `MLComputePlan` observations held out from the sources its rules were "
            f"set from ({h['observations_agreeing']} agree on every op; {h['verbatim']} verbatim, "
            f"{h['observations'] - h['verbatim']} restating the publisher's sentence on the rebuilt program); the "
            f"{data['fitted']['observations']} observations its thresholds were fitted on are not counted.")


@block("placement-agreement")
def placement_agreement(results: Results) -> str:
    data = results["placement_agreement"]
    return agreement_sentence(data) + " See `benchmarks/results/placement_agreement.md`.\n" + provenance(data)


@block("placement-agreement-table")
def placement_agreement_table(results: Results) -> str:
    data = results["placement_agreement"]
    lines = [agreement_sentence(data), "",
             "| observation | split (rules citing its source) | provenance | ops compared | agreeing |",
             "|---|---|---|---:|---:|"]
    for r in data["plans"]:
        split = r["split"].replace("_", "-") + (f" ({', '.join(r['cited_by'])})" if r["cited_by"] else "")
        lines.append(f"| `{r['name']}` | {split} | {r['provenance']} | {r['compared']} | {r['correct']} |")
    return "\n".join(lines) + "\n" + provenance(data)


# --------------------------------------------------------------------------- documents
def render(text: str, results: Results, *, where: str = "document") -> str:
    """``text`` with every marked block re-rendered; FiguresError for a block name nobody renders."""
    def replace(m: re.Match) -> str:
        name = m.group(1)
        if name not in BLOCKS:
            raise FiguresError(f"{where}: unknown figures block '{name}' (known: {', '.join(sorted(BLOCKS))})")
        body = BLOCKS[name](results)
        return f"<!-- {name}:begin -->\n{body}<!-- {name}:end -->"
    return MARKER.sub(replace, text)


def stale(documents=DOCUMENTS, results_dir: Path = RESULTS) -> list[str]:
    """'path: block' for every marked block whose committed text differs from a fresh rendering."""
    results = Results(results_dir)
    out = []
    for path in documents:
        text = Path(path).read_text()
        fresh = {m.group(1): m.group(0) for m in MARKER.finditer(render(text, results, where=str(path)))}
        out += [f"{path}: {m.group(1)}" for m in MARKER.finditer(text) if fresh[m.group(1)] != m.group(0)]
    return out


def refresh(documents=DOCUMENTS, results_dir: Path = RESULTS) -> list[Path]:
    """Rewrite the marked blocks of ``documents`` from ``results_dir``; the paths that changed."""
    results = Results(results_dir)
    changed = []
    for path in map(Path, documents):
        text = path.read_text()
        new = render(text, results, where=str(path))
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only list stale blocks (exit 1 if any)")
    args = ap.parse_args(argv)
    try:
        if args.check:
            found = stale()
            for line in found:
                print(f"stale: {line}", file=sys.stderr)
            return 1 if found else 0
        for path in refresh():
            print(f"updated {path.relative_to(ROOT)}", file=sys.stderr)
    except FiguresError as exc:
        print(f"figures: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
