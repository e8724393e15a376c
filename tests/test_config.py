"""Settings: the shipped config.toml, environment overrides and the errors that stop start-up."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.config import Settings, load_settings
from bot.plugin_loading import discover_plugins
from core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "config.toml"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the environment they set themselves."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("ATELIER_"):
            monkeypatch.delenv(name)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _plugin_models() -> dict[str, type[BaseModel]]:
    """Every built-in plugin's config model, by plugin name."""
    found = discover_plugins(include_entry_points=False)
    return {name: p.config_model for name, p in found.items() if p.config_model is not None}


def test_the_shipped_config_equals_the_defaults() -> None:
    shipped = load_settings(SHIPPED)
    sections = shipped.plugins.config
    shipped.plugins.config = {}

    assert shipped == Settings()
    for name, model in _plugin_models().items():
        assert model.model_validate(sections.get(name, {})) == model(), name
    assert set(sections) <= set(_plugin_models())


def test_the_shipped_config_documents_every_plugin_key() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    missing = []
    for name, model in _plugin_models().items():
        header = f"[plugins.config.{name}]"
        assert header in text, f"section {header} is not documented"
        section = text.split(header, 1)[1].split("\n[", 1)[0]
        missing += [
            f"plugins.config.{name}.{key}"
            for key in model.model_fields
            if not re.search(rf"^#?\s*{key}\s*=", section, re.MULTILINE)
        ]
    assert missing == []


def test_a_plugin_section_can_be_set_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATELIER_PLUGINS__CONFIG__IMAGINE__BACKEND", "celery")

    settings = load_settings(_write(tmp_path, "[plugins.config.imagine]\nmax_steps = 30\n"))

    assert settings.plugins.config["imagine"] == {"backend": "celery", "max_steps": 30}


def test_the_shipped_config_documents_every_key() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    missing = []
    for section_name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for key in annotation.model_fields:
                # A key may be set, commented out (its default is "unset"), a table, or a
                # secret that is only named as its environment variable.
                pattern = (
                    rf"^#?\s*{key}\s*=|^#?\s*\[{section_name}\.{key}[.\]]"
                    rf"|ATELIER_{section_name.upper()}__{key.upper()}"
                )
                if not re.search(pattern, text, re.MULTILINE):
                    missing.append(f"{section_name}.{key}")
            assert f"[{section_name}]" in text, f"section [{section_name}] is not documented"
        elif not re.search(rf"^{section_name}\s*=", text, re.MULTILINE):
            missing.append(section_name)
    assert missing == []


def test_the_shipped_config_holds_no_secrets() -> None:
    values = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    assert "token" not in values["discord"]
    assert "token" not in values["telegram"]
    assert "api_key" not in values["llm"]


def test_an_environment_variable_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "[llm]\nn_ctx = 8192\n")
    monkeypatch.setenv("ATELIER_LLM__N_CTX", "2048")

    assert load_settings(path).llm.n_ctx == 2048


def test_the_file_overrides_the_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, '[console]\nuser = "ada"\n')

    settings = load_settings(path)

    assert settings.console.user == "ada"
    assert settings.console.server == "console"


def test_an_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "[llm]\nn_ctxx = 2048\n")

    with pytest.raises(ConfigError, match=r"llm\.n_ctxx: unknown key"):
        load_settings(path)


def test_an_unknown_section_is_an_error_naming_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "[lmm]\nn_ctx = 2048\n")

    with pytest.raises(ConfigError, match="lmm"):
        load_settings(path)


def test_a_bad_value_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, '[limits]\nuser_burst = "lots"\n')

    with pytest.raises(ConfigError, match=r"limits\.user_burst"):
        load_settings(path)


def test_an_out_of_range_value_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "[llm]\nn_ctx = 16\n")

    with pytest.raises(ConfigError, match=r"llm\.n_ctx"):
        load_settings(path)


def test_a_bad_environment_value_is_an_error_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATELIER_LLM__TEMPERATURE", "hot")

    with pytest.raises(ConfigError, match=r"llm\.temperature"):
        load_settings(_write(tmp_path, ""))


@pytest.mark.parametrize(
    ("section", "key"), [("discord", "token"), ("telegram", "token"), ("llm", "api_key")]
)
def test_a_secret_in_the_file_is_refused(tmp_path: Path, section: str, key: str) -> None:
    path = _write(tmp_path, f'[{section}]\n{key} = "s3cret"\n')

    with pytest.raises(ConfigError, match=rf"{section}\.{key}") as caught:
        load_settings(path)
    assert f"ATELIER_{section.upper()}__{key.upper()}" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_secret_from_the_environment_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATELIER_DISCORD__TOKEN", "s3cret")

    token = load_settings(_write(tmp_path, "")).discord.token

    assert token is not None
    assert token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(token)


def test_broken_toml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[llm\nn_ctx = \n")

    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_settings(path)
    assert str(path) in str(caught.value)


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_data_dir_from_the_command_line_beats_the_environment_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, 'data_dir = "from-file"\n')
    monkeypatch.setenv("ATELIER_DATA_DIR", str(tmp_path / "from-env"))

    assert load_settings(path).data_dir == tmp_path / "from-env"
    assert load_settings(path, data_dir=tmp_path / "from-cli").data_dir == tmp_path / "from-cli"


def test_sqlite_lives_in_the_data_dir_unless_a_url_is_given(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, ""), data_dir=tmp_path / "d")
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.database_url.endswith(str((tmp_path / "d" / "atelier.db").resolve()))

    url = "postgresql+asyncpg://u@127.0.0.1/atelier"
    configured = load_settings(_write(tmp_path, f'[storage]\nurl = "{url}"\n'))
    assert configured.database_url == url
