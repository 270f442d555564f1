from __future__ import annotations

import json
from pathlib import Path

import pytest

from smartapp.config import DEFAULTS, ConfigError, load_config


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    config = load_config({"LAUNCH_JSON": None}, environ={})
    assert config["CDS_VERIFY_JWT"] is True
    assert config["PROFILE"] == DEFAULTS["PROFILE"]


def test_environment_values_are_typed_by_their_default() -> None:
    env = {
        "SMARTAPP_CDS_VERIFY_JWT": "false",
        "SMARTAPP_FHIR_TIMEOUT_S": "2.5",
        "SMARTAPP_FHIR_MAX_PAGES": "7",
        "SMARTAPP_CDS_TRUSTED_ISSUERS": '{"https://ehr": {"jwks_url": "https://ehr/jwks"}}',
        "SMARTAPP_DATABASE_URL": "postgresql+psycopg://db/x",
    }
    config = load_config(environ=env)
    assert config["CDS_VERIFY_JWT"] is False
    assert config["FHIR_TIMEOUT_S"] == 2.5
    assert config["FHIR_MAX_PAGES"] == 7
    assert config["CDS_TRUSTED_ISSUERS"]["https://ehr"]["jwks_url"] == "https://ehr/jwks"
    assert config["DATABASE_URL"] == "postgresql+psycopg://db/x"


@pytest.mark.parametrize("key, value", [
    ("SMARTAPP_CDS_VERIFY_JWT", "maybe"),
    ("SMARTAPP_FHIR_MAX_PAGES", "many"),
    ("SMARTAPP_CDS_TRUSTED_ISSUERS", "[1, 2]"),
    ("SMARTAPP_RULE_OVERRIDES", "{not json"),
])  # fmt: skip
def test_malformed_environment_value_is_an_error(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config(environ={key: value})


def test_precedence_launch_json_then_environment_then_override(tmp_path: Path) -> None:
    launch = tmp_path / "launch.json"
    launch.write_text(json.dumps({"launch_url": "https://app.example/launch"}))
    env = {"SMARTAPP_LAUNCH_JSON": str(launch)}
    assert load_config(environ=env)["APP_LAUNCH_URL"] == "https://app.example/launch"
    env["SMARTAPP_APP_LAUNCH_URL"] = "https://env.example/launch"
    assert load_config(environ=env)["APP_LAUNCH_URL"] == "https://env.example/launch"
    overridden = load_config({"APP_LAUNCH_URL": "https://test/launch"}, environ=env)
    assert overridden["APP_LAUNCH_URL"] == "https://test/launch"


def test_named_launch_json_must_exist_and_be_an_object(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such launch\.json"):
        load_config({"LAUNCH_JSON": str(tmp_path / "absent.json")}, environ={})
    bad = tmp_path / "launch.json"
    bad.write_text("[]")
    with pytest.raises(ConfigError, match="JSON object"):
        load_config({"LAUNCH_JSON": str(bad)}, environ={})
