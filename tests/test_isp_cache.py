"""The ISP row kept per process (db/models.py Isp.current): every change is seen by every worker at once."""
import subprocess
import sys
from pathlib import Path

import pytest

from billing import settings
from db import database, write_tx
from db.models import Isp

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def other_worker(database_url, code):
    """Run ``code`` in a separate Python process on the same database, as another gunicorn worker or host would."""
    script = ("from db import open_database; open_database(%r)\n" % database_url) + code
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)


def test_row_is_kept_and_reread_only_when_its_version_changes(app):
    first = Isp.current()
    kept = database.obj._isp_cache
    assert Isp.current().name == first.name == "Test ISP"
    assert database.obj._isp_cache is kept  # no re-read while nothing changed
    Isp.update(name="Renamed ISP").where(Isp.id == first.id).execute()
    assert Isp.current().name == "Renamed ISP"
    assert database.obj._isp_cache is not kept


def test_a_change_by_another_worker_is_seen_by_the_next_request(app, database_url, logged_in):
    assert Isp.current().logo_type == ""
    assert b'class="logo"' not in logged_in.get("/").data  # this worker has the row in memory now
    other_worker(database_url, "from billing import settings\nsettings.save_logo(%r)\n" % PNG)
    assert Isp.current().logo_type == "image/png"
    assert b'class="logo"' in logged_in.get("/").data
    other_worker(database_url, "from db.models import Isp\n"
                               "Isp.update(support_phone='555-0199').execute()\n")
    assert Isp.current().support_phone == "555-0199"
    assert b"555-0199" in logged_in.get("/").data


def test_a_saved_model_bumps_the_version(app):
    isp = Isp.current()
    isp.support_phone = "555-0142"
    isp.save()
    assert Isp.current().support_phone == "555-0142"


def test_a_row_read_in_a_rolled_back_transaction_is_not_kept(app):
    before = Isp.current().name
    with pytest.raises(RuntimeError):
        with write_tx():
            Isp.update(name="Never committed").execute()
            assert Isp.current().name == "Never committed"
            raise RuntimeError
    assert Isp.current().name == before
    settings.save_logo(PNG)
    assert Isp.current().logo_type == "image/png"


def test_callers_get_their_own_copy(app):
    mine = Isp.current()
    mine.name = "Changed in memory only"
    assert Isp.current().name == "Test ISP"
