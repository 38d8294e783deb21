import json

from pixelplan.distributed.cli import main


def test_eval_random_writes_rate_and_png(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIXELPLAN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "eval"
    assert main(["eval", "--env", "grid", "--agent", "random", "--episodes", "30", "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert 0.0 <= result["eval/achievement"] <= 0.5 and result["eval/episodes"] == 30
    assert (out / "goals.png").stat().st_size > 1000
    assert "achievement rate" in capsys.readouterr().out
    assert list((tmp_path / "cache" / "goals").glob("grid-*.npz"))


def test_eval_bad_env_is_a_clear_error(capsys):
    assert main(["eval", "--env", "nope"]) == 2
    assert "unknown env id" in capsys.readouterr().err
