-- Sensor readings with minute and hour rollups and the latest value per series (A2).

-- One row per (machine, sensor): readings refer to a small integer instead of two strings.
CREATE TABLE series (
    id         INTEGER PRIMARY KEY,
    machine_id TEXT NOT NULL,
    sensor_key TEXT NOT NULL,
    UNIQUE (machine_id, sensor_key)
) STRICT;

-- Keyed by hour chunk first: readings arrive time-major, so inserts touch only the current
-- chunk's pages (one tail per series) instead of scattering over the whole table, while a query
-- for one series seeks once per hour. ts is Unix microseconds; chunk is ts / 3600 s.
CREATE TABLE readings (
    chunk  INTEGER NOT NULL,
    series INTEGER NOT NULL,
    ts     INTEGER NOT NULL,
    value  REAL    NOT NULL,
    PRIMARY KEY (chunk, series, ts)
) STRICT, WITHOUT ROWID;

-- bucket is the Unix second the bucket starts at.
CREATE TABLE rollup_minute (
    series INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    min    REAL    NOT NULL,
    max    REAL    NOT NULL,
    sum    REAL    NOT NULL,
    PRIMARY KEY (series, bucket)
) STRICT, WITHOUT ROWID;

CREATE TABLE rollup_hour (
    series INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    min    REAL    NOT NULL,
    max    REAL    NOT NULL,
    sum    REAL    NOT NULL,
    PRIMARY KEY (series, bucket)
) STRICT, WITHOUT ROWID;

CREATE TABLE latest (
    series INTEGER PRIMARY KEY,
    ts     INTEGER NOT NULL,
    value  REAL    NOT NULL
) STRICT;
