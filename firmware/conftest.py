"""Markers of the board test (pytest-embedded-idf selects tests by target with them)."""


def pytest_configure(config):
    for marker in ("esp32s3", "esp32p4", "generic"):
        config.addinivalue_line("markers", f"{marker}: runs on a board (pytest-embedded-idf)")
