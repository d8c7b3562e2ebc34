"""docs/protocol.md is what scripts/gen_protocol.py makes of schemas/ today."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_committed_protocol_document_matches_the_schemas():
    spec = importlib.util.spec_from_file_location("gen_protocol", ROOT / "scripts" / "gen_protocol.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert (ROOT / "docs" / "protocol.md").read_text() == generator.render(), \
        "docs/protocol.md is out of date: run scripts/gen_protocol.py and commit it"


def test_every_frame_type_is_documented_with_its_fields():
    text = (ROOT / "docs" / "protocol.md").read_text()
    for frame_type in ("ping", "watch", "unwatch", "hello", "pong", "presence", "error"):
        assert f"### `{frame_type}`" in text
