"""``quantdesk filings add|list|stats|search`` on one small real filing (MiniLM, offline)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from quantdesk.cli.main import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.realdata
@pytest.mark.slow
def test_add_list_search_respects_as_of(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = shared_data / "filings" / "sec-edgar-filings" / "AAPL" / "8-K"
    folder = tmp_path / "filings" / "AAPL" / "8-K"
    shutil.copytree(source, folder)
    code, out, err = run_cli(["filings", "add", str(tmp_path / "filings")], capsys)
    assert code == 0, err
    assert "filings found: 1; indexed: 1; kept out: 0" in out
    code, out, _ = run_cli(["filings", "add", str(tmp_path / "filings")], capsys)
    assert "0 new" in out  # idempotent: nothing re-embedded
    assert "embedded: 0" in out
    code, out, _ = run_cli(["filings", "list"], capsys)
    assert "| AAPL | 8-K |" in out
    assert "2019-11-15 11:02" in out  # the acceptance time from the SGML header, in UTC
    code, out, err = run_cli(
        ["filings", "search", "Apple notes offering", "--as-of", "2019-12-31", "-k", "2"], capsys
    )
    assert code == 0, err
    assert "AAPL 8-K" in out
    # the day before the filing was accepted, nothing is public yet
    code, out, err = run_cli(
        ["filings", "search", "Apple notes offering", "--as-of", "2019-11-14"], capsys
    )
    assert code == 0, err
    assert "No passage public by that date" in out
    code, out, _ = run_cli(["filings", "stats"], capsys)
    assert "documents: 1" in out


def test_search_needs_as_of(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["filings", "search", "revenue"], capsys)
    assert code == 2
    assert "--as-of" in err


def test_search_of_an_empty_index_says_to_ingest_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from quantdesk.rag import index as index_module
    from quantdesk.rag.embeddings import HashingEmbedder

    monkeypatch.setattr(index_module, "default_embedder", lambda: HashingEmbedder(256))
    args = ["filings", "search", "going concern", "--as-of", "2020-12-31"]
    code, out, err = run_cli([*args, "--index", str(tmp_path / "empty")], capsys)
    assert code == 2
    assert "holds no filings" in err
    assert "quantdesk filings add" in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], "SYN006 10-K FY2019, Item 1A"),  # the rewrite adds "cash and cash equivalents"
        (["--no-rewrite"], "No passage public by that date matches."),  # no word in common
    ],
)
def test_search_no_rewrite_searches_the_words_as_typed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    expected: str,
) -> None:
    from quantdesk.rag import index as index_module
    from quantdesk.rag.embeddings import HashingEmbedder
    from quantdesk.rag.index import FilingIndex
    from quantdesk.rag.sample_filings import ingest_sample_filings

    # The command opens the folder with the default embedder: make that the hashing one.
    monkeypatch.setattr(index_module, "default_embedder", lambda: HashingEmbedder(256))
    built = FilingIndex(tmp_path / "ix")
    ingest_sample_filings(built)
    built.close()
    args = ["filings", "search", "What is the quick ratio?", "--as-of", "2020-10-19"]
    args += ["--mode", "bm25", "-k", "1", "--index", str(tmp_path / "ix"), *flags]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert expected in out


def _sample_index(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The FICTIONAL sample filings, in a folder the CLI opens with the hashing embedder."""
    from quantdesk.rag import index as index_module
    from quantdesk.rag.embeddings import HashingEmbedder
    from quantdesk.rag.index import FilingIndex
    from quantdesk.rag.sample_filings import ingest_sample_filings

    monkeypatch.setattr(index_module, "default_embedder", lambda: HashingEmbedder(256))
    built = FilingIndex(folder, reranker=False)
    ingest_sample_filings(built)
    built.close()


class _FirstLast:
    """Test double: ranks the fused passages in reverse order."""

    model_id = "test:reversing"

    def score(self, query: str, passages: list[str]) -> object:
        import numpy as np

        return np.arange(len(passages), dtype=np.float64)


@pytest.mark.parametrize(
    ("configured", "flags", "code", "expected"),
    [
        (False, [], 0, "## 1. "),
        (False, ["--rerank"], 2, "no re-ranker is configured"),
        (True, [], 0, "Re-ranked by test:reversing."),
        (True, ["--no-rerank"], 0, "## 1. "),
    ],
)
def test_search_rerank_flags(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    configured: bool,
    flags: list[str],
    code: int,
    expected: str,
) -> None:
    from quantdesk.rag import index as index_module

    _sample_index(tmp_path / "ix", monkeypatch)
    double = _FirstLast() if configured else None
    monkeypatch.setattr(index_module, "reranker_from_settings", lambda: double)
    args = ["filings", "search", "pending merger agreement", "--as-of", "2020-10-19"]
    args += ["-k", "2", "--index", str(tmp_path / "ix"), *flags]
    got, out, err = run_cli(args, capsys)
    assert got == code, err
    assert expected in (out if code == 0 else err)
    assert ("Re-ranked by" in out) == (configured and "--no-rerank" not in flags)


def test_a_reranker_that_does_not_load_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _sample_index(tmp_path / "ix", monkeypatch)
    monkeypatch.setenv("QUANTDESK_RERANKER", str(tmp_path / "no-such-model"))
    args = ["filings", "search", "pending merger agreement", "--as-of", "2020-10-19"]
    args += ["--index", str(tmp_path / "ix")]
    code, out, err = run_cli(args, capsys)
    assert code == 2
    assert "QUANTDESK_RERANKER=" in err
    assert "no such folder" in err
    assert "unset it" in err
    assert "Traceback" not in err
    code, out, err = run_cli([*args, "--no-rerank"], capsys)
    assert code == 0, err
    assert "## 1. " in out
