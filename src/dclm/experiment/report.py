"""report.html: the experiment's summary as one self-contained page (matplotlib PNGs embedded as data URIs,
no script, no network)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

_CURATION = ("extract", "heuristics", "dedup", "quality", "tokenize")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _arm_stages(summary: dict, arm: str) -> list[dict]:
    shared = [s for s in summary["stages"] if s["arm"] is None and s["stage"] == "extract"]
    return shared + [s for s in summary["stages"] if s["arm"] == arm and s["stage"] in _CURATION]


def _funnel(summary: dict) -> str:
    import matplotlib.pyplot as plt

    order = ["records"] + list(_CURATION)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for arm in summary["arms"]:
        rows = _arm_stages(summary, arm)
        xs = [0] + [order.index(r["stage"]) for r in rows]
        docs = [rows[0]["docs_in"]] + [r["docs_out"] for r in rows]
        mb = [rows[0]["bytes_in"] / 1e6] + [r["bytes_out"] / 1e6 for r in rows]
        axes[0].plot(xs, docs, marker="o", label=arm)
        axes[1].plot(xs, mb, marker="o", label=arm)
    axes[0].set_title("documents after each step")
    axes[1].set_title("MB after each step (HTML in, text out; tokenize: token bytes)")
    for ax in axes:
        ax.set_xticks(range(len(order)), order, rotation=20)
        ax.grid(alpha=0.3)
        ax.legend()
    return _png(fig)


def _heuristic_removals(summary: dict) -> str | None:
    import matplotlib.pyplot as plt

    rows = [s for s in summary["stages"] if s["stage"] == "heuristics" and s["detail"].get("removed_by_step")]
    if not rows:
        return None
    steps = rows[0]["detail"]["removed_by_step"]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(steps) + 1))
    names = list(steps)[::-1]
    ax.barh(names, [steps[n] for n in names], color="#c0504d")
    ax.set_xlabel("documents removed")
    ax.set_title(f"heuristics ({rows[0]['arm']}): removals by step")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _dedup(summary: dict) -> str | None:
    import matplotlib.pyplot as plt

    rows = [s for s in summary["stages"] if s["stage"] == "dedup"]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for r in rows:
        axes[0].bar([f"{r['arm']} in", f"{r['arm']} out"], [r["docs_in"], r["docs_out"]], color=["#4f81bd", "#9bbb59"])
        axes[1].bar([f"{r['arm']} in", f"{r['arm']} out"], [r["bytes_in"] / 1e6, r["bytes_out"] / 1e6],
                    color=["#4f81bd", "#9bbb59"])
    axes[0].set_title("dedup: documents")
    axes[1].set_title("dedup: MB of text (paragraphs removed too)")
    return _png(fig)


def _scores(summary: dict) -> str | None:
    import matplotlib.pyplot as plt

    arms = [(n, a["quality"]) for n, a in summary["arms"].items() if a.get("quality")]
    if not arms:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for name, q in arms:
        ax.hist(q["scores"], bins=40, alpha=0.7, label=f"{name}: fastText P(hq)")
        if q.get("threshold") is not None:
            ax.axvline(q["threshold"], color="black", linestyle="--", label=f"threshold {q['threshold']:.3f}")
    ax.set_xlabel("score")
    ax.set_ylabel("documents")
    ax.legend()
    ax.set_title("quality classifier scores")
    return _png(fig)


def _losses(summary: dict) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    for name, a in summary["arms"].items():
        curve = a["train"]["curve"]
        ax.plot([s for s, _ in curve], [v for _, v in curve], label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (CE + z-loss)")
    ax.set_title("training loss, same model and tokens for every arm")
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def _timings(summary: dict) -> str:
    import matplotlib.pyplot as plt

    rows = summary["timings"]["stages"]
    labels = [f"{r['arm'] or 'shared'}: {r['stage']}" for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1))
    ax.barh(labels, [r["secs"] for r in rows][::-1], color="#8064a2")
    ax.set_xlabel("seconds")
    ax.set_title(f"time per stage (total {summary['timings']['total_s']:.0f} s)")
    return _png(fig)


def _table(head: list[str], rows: list[list]) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "—" if v is None else str(v)


def render(summary: dict) -> str:
    arms = summary["arms"]
    stage_rows = [[s["arm"] or "shared", s["stage"], s["docs_in"], s["docs_out"], s["removed"],
                   f"{s['bytes_in'] / 1e6:.2f}", f"{s['bytes_out'] / 1e6:.2f}"] for s in summary["stages"]]
    icl_tasks = sorted({t for a in arms.values() for t in a["eval"].get("icl", {})})
    eval_head = ["arm", "held-out perplexity", "held-out tokens", "train tokens", "final train loss", "CORE"] + icl_tasks
    eval_rows = []
    for name, a in arms.items():
        h = a["eval"].get("heldout") or {}
        curve = a["train"]["curve"]
        eval_rows.append([name, h.get("perplexity"), h.get("tokens"), a["train"]["tokens"],
                          curve[-1][1] if curve else None, a["eval"].get("core")] +
                         [a["eval"].get("icl", {}).get(t) for t in icl_tasks])
    examples = []
    for s in summary["stages"]:
        if s["examples"]:
            items = "".join(f"<li><pre>{html.escape(e)}</pre></li>" for e in s["examples"])
            examples.append(f"<details><summary>{html.escape((s['arm'] or 'shared') + ': ' + s['stage'])} removed "
                            f"{s['removed']} — examples</summary><ul>{items}</ul></details>")
    prompts = []
    for name, a in arms.items():
        for i, smp in enumerate(a["eval"].get("samples", [])):
            while len(prompts) <= i:
                prompts.append({"prompt": smp["prompt"]})
            prompts[i][name] = smp["text"]
    sample_table = _table(["prompt"] + list(arms), [[p["prompt"]] + [p.get(n) for n in arms] for p in prompts]) \
        if prompts else "<p>no prompts in the spec</p>"
    figs = [("Funnel", _funnel(summary)), ("Heuristics", _heuristic_removals(summary)), ("Dedup", _dedup(summary)),
            ("Quality classifier", _scores(summary)), ("Training", _losses(summary)), ("Timings", _timings(summary))]
    fig_html = "".join(f"<h2>{t}</h2><img alt=\"{t}\" src=\"{src}\">" for t, src in figs if src)
    missing = {n: a["eval"].get("missing") for n, a in arms.items() if a["eval"].get("missing")}
    missing_html = f"<p>ICL task files missing (aggregates N/A): {html.escape(str(next(iter(missing.values()))))}</p>" \
        if missing else ""
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(summary['name'])} — dclm experiment</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}table{{border-collapse:collapse;
margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#eee}}
td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}pre{{white-space:pre-wrap;font-size:85%}}</style>
</head><body>
<h1>{html.escape(summary['name'])}</h1>
<p>{html.escape(summary.get('notes') or '')}</p>
<p>seed {summary['seed']} · arms: {html.escape(', '.join(arms))} · every arm trains the same model
({html.escape(str(summary['spec']['train'].get('scale')))}) on the same number of tokens.</p>
<h2>Evaluation</h2>{_table(eval_head, eval_rows)}{missing_html}
<h2>Stages</h2>{_table(["arm", "stage", "docs in", "docs out", "removed", "MB in", "MB out"], stage_rows)}
{''.join(examples)}
{fig_html}
<h2>Sample generations (greedy)</h2>{sample_table}
</body></html>
"""


def write_report(summary: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from dclm.io import atomic_open

    with atomic_open(str(path), "w") as f:
        f.write(render(summary))
    return path
