"""docs/pipeline.md's registers and tables are the ones declared in pipeline.py."""

from __future__ import annotations

import pytest

from nuage_ryu.vrs import pipeline as P
from nuage_ryu.vrs import pipeline_doc


def test_pipeline_doc_is_up_to_date():
    doc = pipeline_doc.DEFAULT_DOC.read_text()
    assert pipeline_doc.updated(doc) == doc, f"docs/pipeline.md is stale; run: {pipeline_doc.COMMAND}"


def test_generated_section_names_every_register_and_table():
    text = pipeline_doc.render()
    for register in P.REGISTERS:
        assert f"| {register.field} |" in text
    for table in P.TABLES:
        assert f"| {table.number} | **{table.name}** |" in text


def test_check_mode_reports_a_stale_doc(tmp_path, capsys):
    doc = tmp_path / "pipeline.md"
    doc.write_text(f"intro\n{pipeline_doc.BEGIN}\nold table\n{pipeline_doc.END}\noutro\n")
    assert pipeline_doc.main([str(doc), "--check"]) == 1
    assert pipeline_doc.COMMAND in capsys.readouterr().err
    assert pipeline_doc.main([str(doc)]) == 0
    assert pipeline_doc.main([str(doc), "--check"]) == 0
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old table" not in text


def test_a_doc_without_markers_is_refused():
    with pytest.raises(ValueError):
        pipeline_doc.updated("no markers here")
