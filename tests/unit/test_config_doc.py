"""docs/config.md is generated from config.py and must not be stale."""

from nuage_ryu import config, config_doc


def test_the_option_reference_is_current():
    with open(config_doc.DEFAULT_DOC) as f:
        assert f.read() == config_doc.render(), f"docs/config.md is stale: run {config_doc.COMMAND}"


def test_every_option_is_in_the_reference():
    text = config_doc.render()
    for group, opts in config.GROUPS.items():
        assert f"## [{group}]" in text
        for opt in opts:
            assert f"| `{opt.dest}` |" in text
