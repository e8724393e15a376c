"""The ``atelier`` command: exit codes, error lines and what reaches stdout."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from workers.pngmeta import read_parameters

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs see only the environment the test sets."""
    for name in list(os.environ):
        if name.upper().startswith("ATELIER_"):
            monkeypatch.delenv(name)


def _atelier(
    *args: str,
    cwd: Path,
    stdin: str = "",
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bot.cli ARGS`` as a user would, in ``cwd``, with a clean environment
    (plus ``env``)."""
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ATELIER_")}
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_config_with_an_unknown_key_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = _config(tmp_path, "[llm]\nn_ctxx = 2048\n")

    result = _atelier("--config", str(config), "chat", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith("atelier: error: ")
    assert "llm.n_ctxx" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_bad_environment_value_exits_2_naming_the_key(tmp_path: Path) -> None:
    env_run = subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "ATELIER_LLM__N_CTX": "tiny"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert env_run.returncode == 2
    assert "llm.n_ctx" in env_run.stderr
    assert "Traceback" not in env_run.stderr


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[discord]\ntoken = "abc"\n', "discord.token"),
        ("[llm\n", "not valid TOML"),
        ('[limits]\nuser_burst = "many"\n', "limits.user_burst"),
    ],
)
def test_config_errors_end_with_one_error_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, named: str
) -> None:
    code = main(["--config", str(_config(tmp_path, text)), "plugins", "list"])

    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("atelier: error: ")
    assert named in err
    assert out == ""


def test_a_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--config", str(tmp_path / "nope.toml"), "db", "upgrade"])

    assert code == 2
    assert "nope.toml" in capsys.readouterr().err


def test_version_prints_the_version(tmp_path: Path) -> None:
    result = _atelier("version", cwd=tmp_path)

    assert result.returncode == 0
    assert result.stdout.startswith("atelier ")


def test_a_missing_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])

    assert exited.value.code == 2
    assert "usage: atelier" in capsys.readouterr().err


def test_plugins_list_prints_every_discovered_plugin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.plugin_loading import discover_plugins

    code = main(["--config", str(_config(tmp_path, "")), "plugins", "list"])

    out = capsys.readouterr().out
    assert code == 0
    plugins = discover_plugins()
    assert plugins, "the built-in plugins should be discovered"
    for name, plugin in plugins.items():
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert plugin.version in line
        assert plugin.description in line


def test_plugins_list_shows_the_configured_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.plugin_loading import discover_plugins

    name, plugin = next((n, p) for n, p in discover_plugins().items() if not p.required)
    flipped = "false" if plugin.enabled_by_default else "true"
    config = _config(tmp_path, f"[plugins.enabled]\n{name} = {flipped}\n")

    main(["--config", str(config), "plugins", "list"])

    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(name))
    assert ("disabled" if plugin.enabled_by_default else "enabled") in line


def test_db_upgrade_creates_the_sqlite_database_in_the_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"

    code = main(["--config", str(_config(tmp_path, "")), "--data-dir", str(data), "db", "upgrade"])

    assert code == 0
    assert (data / "atelier.db").is_file()
    assert "up to date" in capsys.readouterr().out
    with sqlite3.connect(data / "atelier.db") as db:  # the plugins' own tables too
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"servers", "messages", "image_jobs", "alembic_version_imagine"} <= tables
    # Running it again is harmless.
    assert (
        main(["--config", str(_config(tmp_path, "")), "--data-dir", str(data), "db", "upgrade"])
        == 0
    )


@pytest.mark.model
def test_piped_chat_with_the_bundled_model_writes_only_replies(tmp_path: Path) -> None:
    result = _atelier(
        "--data-dir",
        str(tmp_path / "data"),
        "chat",
        "--server",
        "s1",
        "--user",
        "u1",
        cwd=tmp_path,
        stdin="What is the capital of France?\n\n/plugins list\n",
        env={"ATELIER_LLM__SEED": "7"},
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    answer, table = result.stdout.split("\n", 1)
    # The done-when line: an answer of the model's own, not an error, not the question
    # repeated, not only a line about calling a tool.
    assert answer.strip() and not answer.startswith("error:"), result.stdout
    assert answer.strip() != "What is the capital of France?"
    assert not answer.lower().startswith("calling tool")
    assert len(answer.split()) >= 3, answer
    assert "calculator" in table and "imagine" in table
    assert "loading" not in result.stdout


@pytest.mark.model
def test_piped_imagine_writes_a_png_with_its_seed_and_repeats_exactly(tmp_path: Path) -> None:
    """The /imagine done-when line: the bundled demo model, the local worker, the console."""
    line = "/imagine a red apple --width 64 --height 64 --steps 4 --seed 7\n"
    paths = []
    for _ in range(2):
        result = _atelier(
            "--data-dir",
            str(tmp_path / "data"),
            "chat",
            "--server",
            "s1",
            cwd=tmp_path,
            stdin=line,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        images = [
            ln.split(" ", 1)[1] for ln in result.stdout.splitlines() if ln.startswith("[image] ")
        ]
        assert len(images) == 1, result.stdout
        paths.append(Path(images[0]))
    assert "random weights" in result.stdout
    first, second = (p.read_bytes() for p in paths)
    assert paths[0] != paths[1] and first == second
    assert "Seed: 7" in (read_parameters(first) or "")


def test_models_tiny_sd_builds_the_demo_pipeline_offline(tmp_path: Path) -> None:
    result = _atelier("models", "tiny-sd", str(tmp_path / "tiny"), cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "tiny")
    assert (tmp_path / "tiny" / "model_index.json").is_file()
    assert (tmp_path / "tiny" / "atelier_demo.json").is_file()


def test_worker_without_celery_says_how_to_run_it(tmp_path: Path) -> None:
    result = _atelier("worker", cwd=tmp_path)
    assert result.returncode == 2
    assert "atelier worker --celery" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.model
def test_kb_add_loads_files_the_console_then_finds_and_rebuild_re_embeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = REPO / "tests" / "data" / "knowledge" / "docs"
    data = str(tmp_path / "data")
    missing = tmp_path / "missing.txt"
    code = main(
        [
            "--data-dir",
            data,
            "kb",
            "add",
            "--server",
            "console:s1",
            str(docs / "faq.md"),
            str(missing),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1, err  # one of the two files failed
    assert "Added “faq.md”: " in err and "1 of 2 files added" in err, err
    assert str(missing) in err

    assert main(["--data-dir", data, "kb", "rebuild"]) == 0
    assert "passages in 1 servers" in capsys.readouterr().err

    result = _atelier(
        "--data-dir",
        data,
        "chat",
        "--server",
        "s1",
        cwd=tmp_path,
        stdin="/kb search guests\n",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("[1] “faq.md"), result.stdout


def test_kb_add_names_a_bad_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--data-dir", str(tmp_path), "kb", "add", "--server", "irc:x", "a.txt"])
    assert code == 2
    assert "expected console:NAME, discord:GUILD_ID or telegram:CHAT_ID" in capsys.readouterr().err


@pytest.mark.model
def test_console_kb_add_then_a_question_answers_citing_the_file(tmp_path: Path) -> None:
    """The knowledge base's done-when line, with the bundled chat and embedding models."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "faq.md").write_bytes((REPO / "tests/data/knowledge/docs/faq.md").read_bytes())
    config = (REPO / "config.toml").read_text()
    config = config.replace("allowed_paths = []", f"allowed_paths = [{str(docs)!r}]")
    (tmp_path / "config.toml").write_text(config)
    result = _atelier(
        "--config",
        str(tmp_path / "config.toml"),
        "--data-dir",
        str(tmp_path / "data"),
        "chat",
        "--admin",
        cwd=tmp_path,
        stdin=f"/kb add {docs / 'faq.md'}\nWhen is the workshop open?\n",
        env={"ATELIER_LLM__SEED": "7"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    added, answer = result.stdout.split("\n", 1)
    assert added.startswith("Added “faq.md”: "), result.stdout
    text, _, sources = answer.partition("\n\nSources:\n")
    assert text.strip() and not text.startswith("error:"), result.stdout
    assert sources.startswith("[1] “faq.md — "), result.stdout
