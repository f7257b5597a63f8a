"""``[sync]`` export files picked up on their own (``rebook sync``, and the service's pickup)."""

from __future__ import annotations

from campaigns.store.tables import clients, visits

from .service import RunningService

SYNC = '\n[sync]\nclients = "exports/clients.csv"\nvisits = "exports/visits.csv"\nevery = "1s"\n'
CLIENTS = "id,email,first_name,last_name,marketing_consent,tags\nc1,one@example.com,A,One,yes,\n"
VISITS = "id,client_id,starts_at,service,status\nv1,c1,2026-03-14T09:30,massage,attended\n"
CUT = "c2,two@example.com,B,Two,yes,do-not-con"  # the export, caught while being saved
NEW_VISIT = "v2,c2,2026-03-15T09:30,massage,attended\n"


def synced_clinic(clinic):
    clinic.write_config(SYNC)
    clinic.write("exports/clients.csv", CLIENTS)
    clinic.write("exports/visits.csv", VISITS)
    first = clinic.rebook("sync")
    assert first.code == 0, first.err
    return clinic.folder / "exports"


def test_a_file_still_being_written_is_imported_at_the_sync_after_it_is_whole(sqlite_clinic):
    exports = synced_clinic(sqlite_clinic)
    (exports / "clients.csv").write_text(CLIENTS + CUT)
    (exports / "visits.csv").write_text(VISITS + NEW_VISIT)  # names c2, not imported yet
    first = sqlite_clinic.rebook("sync")
    again = sqlite_clinic.rebook("sync")  # unchanged, still cut: said so again, not "rejected"
    assert "still being written, or was cut short; nothing imported" in first.err
    assert "its last line is still cut short, as at the last sync" in again.err
    for result in (first, again):
        assert result.code == 2 and "Traceback" not in result.err
        assert "bad row" not in result.err and "rejected" not in result.err
        assert "visits.csv: not imported yet: it waits for" in result.err
    assert sqlite_clinic.rows(clients, "id") == [("c1",)]
    assert sqlite_clinic.rows(visits, "id") == [("v1",)]

    (exports / "clients.csv").write_text(CLIENTS + CUT + "tact\n")  # the writer is done
    done = sqlite_clinic.rebook("sync")
    assert done.code == 0, done.err
    assert "clients.csv: imported 2 clients: 1 inserted, 0 updated, 1 unchanged" in done.out
    assert "visits.csv: imported 2 visits: 1 inserted, 0 updated, 1 unchanged" in done.out
    assert sqlite_clinic.rows(clients, "id", "tags") == [("c1", ""), ("c2", "do-not-contact")]


def test_visits_refused_for_want_of_their_client_are_tried_again_when_the_clients_change(
    sqlite_clinic,
):
    """The visits export named a client the clients export did not have yet."""
    exports = synced_clinic(sqlite_clinic)
    (exports / "visits.csv").write_text(VISITS + NEW_VISIT)
    refused = sqlite_clinic.rebook("sync")
    assert refused.code == 2 and "client_id 'c2' is not an imported client" in refused.err
    (exports / "clients.csv").write_text(CLIENTS + CUT + "tact\n")
    done = sqlite_clinic.rebook("sync")
    assert done.code == 0, done.err
    assert sqlite_clinic.rows(visits, "id") == [("v1",), ("v2",)]


def test_the_service_logs_a_file_still_being_written_and_imports_it_once_whole(sqlite_clinic):
    exports = synced_clinic(sqlite_clinic)
    (exports / "clients.csv").write_text(CLIENTS + CUT)
    with RunningService(sqlite_clinic.folder) as service:
        line = service.wait_for("sync file still being written")
        assert "clients.csv" in line and "line 3, the last, ends without a line break" in line
        assert "sync rejected" not in service.log()
        (exports / "clients.csv").write_text(CLIENTS + CUT + "tact\n")
        assert "inserted=1" in service.wait_for("sync imported")
        assert service.stop() == 0
    assert sqlite_clinic.rows(clients, "id", "tags") == [("c1", ""), ("c2", "do-not-contact")]
