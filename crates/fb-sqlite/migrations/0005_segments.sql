-- Raw readings as segments (A2): each write stores, per series and hour chunk, one row holding
-- all of that write's samples of the series, sorted by time. A row per reading made SQLite
-- insert at one B-tree position per series and rebalance pages in the middle of the tree for
-- every reading; a row per series per write costs the same at any rate. Small segments of
-- closed hours are merged later (segment_dirty lists what to merge). The old readings table is
-- converted into segments by the writer when it starts, then dropped.
--
-- data: count samples of 16 bytes, (ts: i64, value: f64) little-endian, ts ascending; ts is Unix
-- microseconds, chunk is ts / 3600 s, first and last are the first and last sample's ts. The
-- index finds "segments of a series ending after t and starting before u" (what late data and
-- range queries look for) without reading a row that does not qualify.
CREATE TABLE segments (
    series INTEGER NOT NULL,
    chunk  INTEGER NOT NULL,
    first  INTEGER NOT NULL,
    last   INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    data   BLOB    NOT NULL
) STRICT;

CREATE INDEX segments_by_span ON segments (series, chunk, last, first);

-- (series, chunk) pairs holding more than one segment.
CREATE TABLE segment_dirty (
    series INTEGER NOT NULL,
    chunk  INTEGER NOT NULL,
    PRIMARY KEY (series, chunk)
) STRICT, WITHOUT ROWID;
