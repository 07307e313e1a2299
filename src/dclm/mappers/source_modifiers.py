"""DCLM's source-specific modifiers (StarCoder v2 repos, RedPajama-v1 arXiv and StackExchange cleaning),
from baselines/mappers/modifiers.py.

One deliberate difference: `starcoder_v2_format_modifier` draws "add metadata?" from Python's unseeded RNG
in DCLM; ours takes a `seed` (default 0) and derives the draw from the seed and the page (repo name and
file names), so runs are reproducible.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Callable

from dclm.errors import DclmError
from dclm.mappers.registry import factory_function, mapper

CONTENT = "text"


@mapper
def starcoder_v2_repo_splitter(page: dict, max_files=1000, delete_content=True) -> list[dict]:
    """Split a repo page whose `files` list is longer than `max_files` into chunks of `max_files` files
    (deep copies; `text` removed from the chunks when `delete_content`)."""
    files = page["files"]
    if len(files) <= max_files:
        return [page]
    chunks = []
    for i in range(0, len(files), max_files):
        new_page = copy.deepcopy(page)
        new_page["files"] = files[i:i + max_files]
        if delete_content and CONTENT in new_page:
            del new_page[CONTENT]
        chunks.append(new_page)
    return chunks


def _repo_uniform(page: dict, seed: int) -> float:
    h = hashlib.blake2b(digest_size=8, key=str(seed).encode()[:64])
    h.update(str(page.get("repo_name", "")).encode("utf-8", "surrogatepass"))
    for f in page["files"]:
        h.update(b"\x00" + str(f.get("filename", "")).encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "big") / 2.0 ** 64


@mapper
def starcoder_v2_format_modifier(page: dict, add_metadata_prob: float = 0.5, add_sentinels: bool = True,
                                 seed: int = 0) -> list[dict]:
    """Concatenate a repo's files into `text` as `<file_sep>{text}`...; with probability `add_metadata_prob`
    as `<repo_name>{repo}` + `<file_sep>{filename}\\n{text}`... Without sentinels, `<file_sep>` becomes a
    blank line, `<repo_name>` is dropped and the result is stripped."""
    assert 0 <= add_metadata_prob <= 1
    if _repo_uniform(page, seed) < add_metadata_prob:
        text = f"<repo_name>{page['repo_name']}" + "".join(f"<file_sep>{f['filename']}\n{f['text']}" for f in page["files"])
    else:
        text = "".join(f"<file_sep>{f['text']}" for f in page["files"])
    if not add_sentinels:
        text = text.replace("<file_sep>", "\n\n").replace("<repo_name>", "").strip()
    page[CONTENT] = text
    return [page]


def _replace_or_drop(page: dict, new_content: str) -> list[dict]:
    if new_content == "":
        return []
    page[CONTENT] = new_content
    return [page]


@mapper
@factory_function
def arxiv_appendix_modifier() -> Callable:
    """Cut everything from the first `\\appendix`, `\\begin{references}`, `\\begin{REFERENCES}`,
    `\\begin{thebibliography}` or `\\bibliography{...}`."""
    pattern = re.compile(r"(\\appendix|\\begin\{references\}|\\begin\{REFERENCES\}|\\begin\{thebibliography\}|"
                         r"\\bibliography\{.*?\}).*$", flags=re.DOTALL)

    def modify(page: dict) -> list[dict]:
        return _replace_or_drop(page, pattern.sub("", page[CONTENT]))

    return modify


@mapper
@factory_function
def arxiv_comment_modifier(remove_multiline=False) -> Callable:
    """Remove LaTeX `%` comments: whole comment lines, then in-line comments (with the character before the
    `%`, as RedPajama's regex does); with `remove_multiline`, also `\\begin{comment}...\\end{comment}`."""
    line_pattern = re.compile(r"(?m)^%.*\n?")
    within_line_pattern = re.compile(r"[^\\]%.+$", flags=re.MULTILINE)
    multiline_pattern = re.compile(r"\\begin{comment}.*?\\end{comment}", flags=re.DOTALL)

    def modify(page: dict) -> list[dict]:
        content = within_line_pattern.sub("", line_pattern.sub("", page[CONTENT]))
        if remove_multiline:
            content = multiline_pattern.sub("", content)
        return _replace_or_drop(page, content)

    return modify


@mapper
@factory_function
def arxiv_macro_modifier() -> Callable:
    """Expand argument-less `\\newcommand{\\name}{value}` and `\\def\\name{value}` macros where used."""
    newcommand = re.compile(r"\\\bnewcommand\b\*?\{(\\[a-zA-Z0-9]+?)\}\{(.*?)\}$", flags=re.MULTILINE)
    define = re.compile(r"\\def\s*(\\[a-zA-Z0-9]+?)\s*\{(.*?)\}$", flags=re.MULTILINE)

    def modify(page: dict) -> list[dict]:
        content = page.get(CONTENT, "")
        macros = {}
        for reg in (newcommand, define):
            for m in reg.finditer(content):
                macros[m.group(1).encode("unicode-escape").decode("utf-8")] = m.group(2).encode("unicode-escape").decode("utf-8")
        # the names and values are used as regex fragments and replacement templates, exactly as RedPajama does
        for name, value in macros.items():
            content = re.sub(r"(" + name + r")" + r"([^a-zA-Z0-9])", value + r"\2", content)
        return _replace_or_drop(page, content)

    return modify


@mapper
@factory_function
def arxiv_section_strip_modifier() -> Callable:
    """Drop the preamble before the first sectioning command (chapter, part, section, subsection,
    subsubsection, paragraph); no such command drops the page."""
    pattern = (r"^(.*?)("
               r"\\\bchapter\b\*?(?:\[(.*?)\])?\{(.*?)\}|"
               r"\\\bpart\b\*?(?:\[(.*?)\])?\{(.*?)\}|"
               r"\\\bsection\b\*?(?:\[(.*?)\])?\{(.*?)\}|"
               r"\\\bsubsection\b\*?(?:\[(.*?)\])?\{(.*?)\}|"
               r"\\\bsubsubsection\b\*?(?:\[(.*?)\])?\{(.*?)\}|"
               # RedPajama's pattern lacks the `|` between these two alternatives; kept for identical output
               r"\\\bparagraph\b\*?(?:\[(.*?)\])?\{(.*?)\}"
               r"\\\bsubparagraph\b\*?(?:\[(.*?)\])?\{(.*?)\}"
               r")")
    regex = re.compile(pattern, flags=re.DOTALL)

    def modify(page: dict) -> list[dict]:
        if not regex.search(page[CONTENT]):
            return []
        return _replace_or_drop(page, regex.sub(r"\2", page[CONTENT]))

    return modify


def _reformat_lists(html: str) -> str:
    return html.replace("<li>", "\n*").replace("</li>", "").replace("<ol>", "\n*").replace("</ol>", "")


@mapper
def stackexchange_list_modifier(page: dict) -> list[dict]:
    """In `question.text` and each `answers[i].text`, turn `<li>` and `<ol>` into `\\n*` and drop their
    closing tags."""
    page["question"]["text"] = _reformat_lists(page["question"]["text"])
    for answer in page.get("answers", []):
        answer["text"] = _reformat_lists(answer["text"])
    return [page]


@mapper
def stackexchange_answer_sort_modifier(page: dict, descending=True) -> list[dict]:
    """Sort `answers` by `score` (missing = 0), highest first unless `descending=False`; stable."""
    if "answers" in page and isinstance(page["answers"], list):
        page["answers"].sort(key=lambda a: a.get("score", 0), reverse=descending)
    return [page]


@mapper
@factory_function
def stackexchange_html_extraction_modifier() -> Callable:
    """Replace the HTML of the question and answers by BeautifulSoup(lxml) `get_text()`."""
    try:
        from bs4 import BeautifulSoup
    except ImportError:
        raise DclmError("stackexchange_html_extraction_modifier needs beautifulsoup4: pip install 'dclm[extract]'") from None

    def extract(html: str) -> str:
        return BeautifulSoup(html, "lxml").get_text()

    def modify(page: dict) -> list[dict]:
        page["question"]["text"] = extract(page["question"]["text"])
        for answer in page.get("answers", []):
            answer["text"] = extract(answer["text"])
        return [page]

    return modify


@mapper
def stackexchange_qa_formatter(page: dict, remove_qa=False) -> list[dict]:
    """`text` = "Q: {question}\\nA: {answer 1}\\nA: {answer 2}..."; no question drops the page; `remove_qa`
    deletes the `question` and `answers` fields."""
    if "question" not in page:
        return []
    if "answers" in page:
        answers = "\nA: ".join(a["text"] for a in page["answers"])
        page[CONTENT] = f"Q: {page['question']['text']}\nA: {answers}"
    else:
        page[CONTENT] = f"Q: {page['question']['text']}"
    if remove_qa:
        page.pop("question", None)
        page.pop("answers", None)
    return [page]
