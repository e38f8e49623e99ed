"""Which failures of a COMMIT's round trip leave its outcome unknown: only the server's own
refusal of a statement before the COMMIT (or of the COMMIT's lock wait) means nothing."""

import pymysql
import pytest

from credit import mysql


class Cursor:
    """Fails while reading the reply to statement `at` (0-based) of a multi-statement."""

    def __init__(self, at, error):
        self.at, self.error, self.read = at, error, 0
        self.connection = self

    def thread_id(self):
        return 42

    def execute(self, sql, args):
        self.statements = sql.count(";") + 1
        self._next()

    def nextset(self):
        if self.read >= self.statements:
            return None
        self._next()
        return True

    def _next(self):
        if self.read == self.at:
            raise self.error
        self.read += 1


INSERTS = ["INSERT INTO tickets VALUES (1)", "INSERT INTO outbox VALUES (1)"]


@pytest.mark.parametrize(
    "error",
    [
        pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"),
        pymysql.err.IntegrityError(1062, "Duplicate entry"),
        pymysql.err.OperationalError(1969, "Query execution was interrupted"),
        pymysql.err.DataError(1406, "Data too long"),
    ],
)
@pytest.mark.parametrize("at", [0, 1])
def test_a_statement_the_server_refused_before_the_commit_means_nothing_was_stored(at, error):
    with pytest.raises(type(error)):
        mysql._commit(Cursor(at, error), INSERTS, [])


def test_a_commit_refused_for_its_lock_wait_rolled_back():
    error = pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")
    with pytest.raises(pymysql.err.OperationalError):
        mysql._commit(Cursor(2, error), INSERTS, [])


@pytest.mark.parametrize(
    "error",
    [
        pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"),
        pymysql.err.OperationalError(2006, "MySQL server has gone away"),
        pymysql.err.InterfaceError(0, ""),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError("timed out"),
    ],
)
@pytest.mark.parametrize("at", [0, 1, 2])
def test_no_reply_from_the_server_leaves_the_commit_unknown(at, error):
    with pytest.raises(mysql._CommitUnknown) as caught:
        mysql._commit(Cursor(at, error), INSERTS, [])
    assert caught.value.thread_id == 42


@pytest.mark.parametrize(
    "error",
    [
        pymysql.err.OperationalError(1927, "Connection was killed"),
        pymysql.err.OperationalError(1969, "Query execution was interrupted"),
        pymysql.err.OperationalError(1180, "Got error during COMMIT"),
    ],
)
def test_a_commit_interrupted_or_failing_otherwise_is_unknown(error):
    with pytest.raises(mysql._CommitUnknown):
        mysql._commit(Cursor(2, error), INSERTS, [])


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (pymysql.err.OperationalError(1205, "x"), 1205),
        (pymysql.err.IntegrityError(1062, "x"), 1062),
        (pymysql.err.OperationalError(2013, "x"), None),
        (pymysql.err.InterfaceError(0, ""), None),
        (OSError("x"), None),
        (pymysql.err.OperationalError("not a number"), None),
    ],
)
def test_only_replies_of_the_server_have_an_error_code(error, code):
    assert mysql._error_code(error) == code
