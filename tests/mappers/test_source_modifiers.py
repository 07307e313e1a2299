import pytest

from dclm.mappers.source_modifiers import (
    arxiv_appendix_modifier,
    arxiv_comment_modifier,
    arxiv_macro_modifier,
    arxiv_section_strip_modifier,
    stackexchange_answer_sort_modifier,
    stackexchange_html_extraction_modifier,
    stackexchange_list_modifier,
    stackexchange_qa_formatter,
    starcoder_v2_format_modifier,
    starcoder_v2_repo_splitter,
)


def repo(n=3):
    return {"repo_name": "me/tool", "text": "x", "files": [{"filename": f"f{i}.py", "text": f"print({i})"} for i in range(n)]}


def test_starcoder_repo_splitter():
    page = repo(5)
    chunks = starcoder_v2_repo_splitter(page, max_files=2)
    assert [len(c["files"]) for c in chunks] == [2, 2, 1]
    assert all("text" not in c for c in chunks)
    assert "text" in starcoder_v2_repo_splitter(repo(5), max_files=2, delete_content=False)[0]
    page = repo(2)
    assert starcoder_v2_repo_splitter(page, max_files=2) == [page]


def test_starcoder_format_modifier():
    page = starcoder_v2_format_modifier(repo(2), add_metadata_prob=0.0)[0]
    assert page["text"] == "<file_sep>print(0)<file_sep>print(1)"
    page = starcoder_v2_format_modifier(repo(2), add_metadata_prob=1.0)[0]
    assert page["text"] == "<repo_name>me/tool<file_sep>f0.py\nprint(0)<file_sep>f1.py\nprint(1)"
    page = starcoder_v2_format_modifier(repo(2), add_metadata_prob=1.0, add_sentinels=False)[0]
    assert page["text"] == "me/tool\n\nf0.py\nprint(0)\n\nf1.py\nprint(1)"
    # seeded: the same page and seed always make the same choice
    a = [starcoder_v2_format_modifier({**repo(2), "repo_name": f"r{i}"}, 0.5)[0]["text"] for i in range(40)]
    b = [starcoder_v2_format_modifier({**repo(2), "repo_name": f"r{i}"}, 0.5)[0]["text"] for i in range(40)]
    assert a == b and 5 < sum(t.startswith("<repo_name>") for t in a) < 35


def test_arxiv_appendix_modifier():
    mod = arxiv_appendix_modifier()
    assert mod({"text": "Body text.\n\\appendix\nMore"})[0]["text"] == "Body text.\n"
    assert mod({"text": "Body \\bibliography{refs} tail"})[0]["text"] == "Body "
    assert mod({"text": "\\begin{thebibliography} all"}) == []


def test_arxiv_comment_modifier():
    mod = arxiv_comment_modifier()
    assert mod({"text": "% a comment\nText here % trailing\n50\\% kept"})[0]["text"] == "Text here\n50\\% kept"
    multi = arxiv_comment_modifier(remove_multiline=True)
    assert multi({"text": "a\\begin{comment}hidden\\end{comment}b"})[0]["text"] == "ab"


def test_arxiv_macro_modifier():
    mod = arxiv_macro_modifier()
    text = "\\newcommand{\\R}{\\mathbb{R}}\n\\def\\eps{\\epsilon}\nLet $x \\in \\R$ and $\\eps > 0$."
    out = mod({"text": text})[0]["text"]
    assert "Let $x \\in \\mathbb{R}$ and $\\epsilon > 0$." in out


def test_arxiv_section_strip_modifier():
    mod = arxiv_section_strip_modifier()
    assert mod({"text": "preamble\n\\section{Intro}\nBody"})[0]["text"] == "\\section{Intro}\nBody"
    assert mod({"text": "no sections at all"}) == []


def qa():
    return {"question": {"text": "<p>How?</p><ol><li>a</li></ol>"},
            "answers": [{"text": "<b>low</b>", "score": 1}, {"text": "high", "score": 9}, {"text": "none"}]}


def test_stackexchange_modifiers():
    page = stackexchange_list_modifier(qa())[0]
    assert page["question"]["text"] == "<p>How?</p>\n*\n*a"
    page = stackexchange_answer_sort_modifier(qa())[0]
    assert [a["text"] for a in page["answers"]] == ["high", "<b>low</b>", "none"]
    page = stackexchange_answer_sort_modifier(qa(), descending=False)[0]
    assert [a["text"] for a in page["answers"]] == ["none", "<b>low</b>", "high"]
    page = stackexchange_qa_formatter({"question": {"text": "Q1"}, "answers": [{"text": "A1"}, {"text": "A2"}]}, remove_qa=True)[0]
    assert page == {"text": "Q: Q1\nA: A1\nA: A2"}
    assert stackexchange_qa_formatter({"question": {"text": "Q1"}})[0]["text"] == "Q: Q1"
    assert stackexchange_qa_formatter({"text": "no question"}) == []


def test_stackexchange_html_extraction():
    pytest.importorskip("bs4")
    page = stackexchange_html_extraction_modifier()(qa())[0]
    assert page["question"]["text"] == "How?a"
    assert page["answers"][0]["text"] == "low"
