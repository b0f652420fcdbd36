"""SQL errors as SkyServer and CasJobs report them (SQL Server's own message texts).

SkyServer and CasJobs run the SQL on Microsoft SQL Server and pass its error
message on. Two things live here, once, for the clients and the loopback
servers alike:

* :func:`permanent_sql_error` finds, in an answer's body, a SQL Server error
  that no retry can fix (bad syntax, unknown column or table, an object that
  already exists, a permission refused); the clients then fail at once, quoting
  it, instead of retrying a query that can never succeed;
* :func:`sqlserver_message` turns an SQLite error of the loopback servers into
  the message SQL Server gives for the same mistake (``sys.messages``, e.g.
  207 "Invalid column name 'x'."), so that the loopback servers answer with the
  real text.

How the services wrap the message (read from their sources,
github.com/sciserver/SkyServer-DR13 and github.com/sciserver/SkyServerWS):

* SkyServer's ``x_sql.aspx`` with ``format=csv`` (``ResponseAux.writeError``):
  HTTP 200, ``text/html``, ``<html><head></head><body><h1>ERROR</h1><h2>MESSAGE</h2></body></html>``;
* SciServer's REST services for non-HTML formats (``ExceptionHandleAttribute``):
  the HTTP error status with the JSON body ``{"ErrorCode": 500, "ErrorType":
  "InternalServerError", "ErrorMessage": MESSAGE, "LogMessageID": ..., "LogTime": ...}``.
"""

from __future__ import annotations

import html
import json
import re

__all__ = ["PERMANENT_SQL_ERRORS", "permanent_sql_error", "sqlserver_message", "skyserver_error_page",
           "sciserver_error_json"]

PERMANENT_SQL_ERRORS = (
    r"Incorrect syntax near [^\n<]*",                                   # 102, 156
    r"Invalid column name '[^']*'\.",                                   # 207
    r"Invalid object name '[^']*'\.",                                   # 208
    r"The multi-part identifier \"[^\"]*\" could not be bound\.",       # 4104
    r"'[^']*' is not a recognized built-in function name\.",            # 195
    r"Ambiguous column name '[^']*'\.",                                 # 209
    r"There is already an object named '[^']*' in the database\.",      # 2714
    r"The \w+ permission was denied on the object [^\n<]*",             # 229
    r"Must declare the scalar variable \"[^\"]*\"\.",                   # 137
    r"Column '[^']*' is invalid in the select list [^\n<]*",            # 8120
)
"""SQL Server messages of mistakes in the query itself: retrying the same query cannot help."""

_PERMANENT = re.compile("|".join(f"(?:{p})" for p in PERMANENT_SQL_ERRORS))


def permanent_sql_error(body):
    """The SQL Server message of an unfixable SQL error in ``body`` (text, HTML or JSON), else None."""
    if not body:
        return None
    text = html.unescape(body) if "<" in body else body
    m = _PERMANENT.search(text)
    return m.group(0).strip() if m else None


def _bare(name):
    return name.strip().strip('"[]`').split(".")[-1]


#: SQLite's error text -> SQL Server's message for the same mistake (``{}``: the name, unquoted
#: by ``_bare`` unless the entry says otherwise). Used by the loopback servers.
_SQLITE_TO_SQLSERVER = (
    (r"no such column: (.+)$", "Invalid column name '{}'.", _bare),
    (r'near "(.*)": syntax error$', "Incorrect syntax near '{}'.", str),
    (r"no such table: (.+)$", "Invalid object name '{}'.", _bare),
    (r"no such function: (.+)$", "'{}' is not a recognized built-in function name.", str.strip),
    (r"ambiguous column name: (.+)$", "Ambiguous column name '{}'.", _bare),
    (r"table (.+) already exists$", "There is already an object named '{}' in the database.", _bare),
)


def sqlserver_message(sqlite_error, sql=""):
    """SQL Server's message for the mistake behind ``sqlite_error`` (an SQLite error text)."""
    err = str(sqlite_error)
    if err.startswith("incomplete input"):
        words = sql.split()
        return f"Incorrect syntax near '{words[-1] if words else ''}'."
    for pattern, message, name in _SQLITE_TO_SQLSERVER:
        m = re.match(pattern, err)
        if m:
            return message.format(name(m.group(1)))
    return err


def skyserver_error_page(message):
    """SkyServer ``x_sql.aspx``'s answer to a failing query in a non-HTML format (sent with HTTP 200)."""
    return f"<html><head></head><body><h1>ERROR</h1><h2>{message}</h2></body></html>"


def sciserver_error_json(status, error_type, message, log_id="0"):
    """The JSON body of a SciServer REST error (SkyServerWS ``ExceptionHandleAttribute``)."""
    return json.dumps({"ErrorCode": int(status), "ErrorType": error_type, "ErrorMessage": message,
                       "LogMessageID": log_id, "LogTime": "2026-01-01T00:00:00"})
