-- Sensor readings, partitioned by day, with minute and hour rollups and the latest value per
-- series (A2). Daily partitions are created by the application ahead of time and on demand.

CREATE TABLE series (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    machine_id text   NOT NULL,
    sensor_key text   NOT NULL,
    UNIQUE (machine_id, sensor_key)
);

CREATE TABLE readings (
    series bigint           NOT NULL,
    ts     timestamptz      NOT NULL,
    value  double precision NOT NULL,
    PRIMARY KEY (series, ts)
) PARTITION BY RANGE (ts);

-- bucket is the Unix second the bucket starts at.
CREATE TABLE rollup_minute (
    series bigint           NOT NULL,
    bucket bigint           NOT NULL,
    count  bigint           NOT NULL,
    min    double precision NOT NULL,
    max    double precision NOT NULL,
    sum    double precision NOT NULL,
    PRIMARY KEY (series, bucket)
);

CREATE TABLE rollup_hour (
    series bigint           NOT NULL,
    bucket bigint           NOT NULL,
    count  bigint           NOT NULL,
    min    double precision NOT NULL,
    max    double precision NOT NULL,
    sum    double precision NOT NULL,
    PRIMARY KEY (series, bucket)
);

CREATE TABLE latest (
    series bigint           PRIMARY KEY,
    ts     timestamptz      NOT NULL,
    value  double precision NOT NULL
);
