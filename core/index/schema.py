"""The SQLite schema of the index (version 1)."""

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS global_properties (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS resources (
    internal_id INTEGER PRIMARY KEY,
    level INTEGER NOT NULL,              -- 0 patient, 1 study, 2 series, 3 instance
    public_id TEXT NOT NULL UNIQUE,      -- Orthanc's SHA-1 identifier
    parent_id INTEGER REFERENCES resources(internal_id) ON DELETE CASCADE,
    main_tags TEXT NOT NULL,             -- JSON object: keyword -> value
    last_update TEXT NOT NULL,
    is_stable INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS resources_parent ON resources(parent_id);
CREATE INDEX IF NOT EXISTS resources_level ON resources(level, internal_id);

-- One row per main tag, for queries (/tools/find, C-FIND). value_norm is the
-- upper-cased value used by case-insensitive matching.
CREATE TABLE IF NOT EXISTS dicom_identifiers (
    internal_id INTEGER NOT NULL REFERENCES resources(internal_id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    value TEXT NOT NULL,
    value_norm TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dicom_identifiers_tag_value ON dicom_identifiers(tag, value_norm);
CREATE INDEX IF NOT EXISTS dicom_identifiers_resource ON dicom_identifiers(internal_id);

CREATE TABLE IF NOT EXISTS attached_files (
    internal_id INTEGER NOT NULL REFERENCES resources(internal_id) ON DELETE CASCADE,
    file_type INTEGER NOT NULL,          -- 1 = the DICOM file
    uuid TEXT NOT NULL,
    compressed_size INTEGER NOT NULL,
    uncompressed_size INTEGER NOT NULL,
    compression INTEGER NOT NULL,
    uncompressed_md5 TEXT NOT NULL,
    compressed_md5 TEXT NOT NULL,
    PRIMARY KEY (internal_id, file_type)
) WITHOUT ROWID;  -- one B-tree instead of a table and its key's index (indexes made
                  -- before this clause keep the rowid table: both answer the same SQL)
CREATE INDEX IF NOT EXISTS attached_files_uuid ON attached_files(uuid);

CREATE TABLE IF NOT EXISTS metadata (
    internal_id INTEGER NOT NULL REFERENCES resources(internal_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (internal_id, name)
);

-- Labels of resources (Orthanc 1.12): alphanumeric, "_" and "-", 1 to 64 characters.
CREATE TABLE IF NOT EXISTS labels (
    internal_id INTEGER NOT NULL REFERENCES resources(internal_id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    PRIMARY KEY (internal_id, label)
);
CREATE INDEX IF NOT EXISTS labels_label ON labels(label);

-- The DICOM header (file bytes up to the pixel data) of each instance, so that tags and
-- metadata are served without re-reading the stored file.
CREATE TABLE IF NOT EXISTS instance_headers (
    internal_id INTEGER PRIMARY KEY REFERENCES resources(internal_id) ON DELETE CASCADE,
    header BLOB NOT NULL,
    has_pixel_data INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    change_type TEXT NOT NULL,
    level INTEGER NOT NULL,
    public_id TEXT NOT NULL,
    date TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS exports (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    level INTEGER NOT NULL,
    public_id TEXT NOT NULL,
    remote_modality TEXT NOT NULL,
    patient_id TEXT NOT NULL DEFAULT '',
    study_instance_uid TEXT NOT NULL DEFAULT '',
    series_instance_uid TEXT NOT NULL DEFAULT '',
    sop_instance_uid TEXT NOT NULL DEFAULT '',
    date TEXT NOT NULL
);

-- Resources that received an instance less than StableAge seconds ago. Kept in the
-- index (not in memory) so that several processes sharing it agree.
CREATE TABLE IF NOT EXISTS unstable_resources (
    internal_id INTEGER PRIMARY KEY REFERENCES resources(internal_id) ON DELETE CASCADE,
    level INTEGER NOT NULL,
    public_id TEXT NOT NULL,
    deadline REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS unstable_deadline ON unstable_resources(deadline);

-- Modalities declared over REST (PUT /modalities/{id}); those of the YAML are not here.
CREATE TABLE IF NOT EXISTS modalities (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL             -- Orthanc's JSON description
);

-- The jobs engine: every long operation, kept across restarts.
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,                 -- Pending, Running, Success, Failure, Paused
    progress INTEGER NOT NULL DEFAULT 0,
    creation_time TEXT NOT NULL,
    completion_time TEXT,
    runtime REAL NOT NULL DEFAULT 0,
    error_code INTEGER NOT NULL DEFAULT 0,
    error_description TEXT NOT NULL DEFAULT 'Success',
    error_details TEXT NOT NULL DEFAULT '',
    parameters TEXT NOT NULL,            -- JSON: what the job needs to (re)start
    content TEXT NOT NULL DEFAULT '{}',  -- JSON: what GET /jobs/{id} shows
    timestamp TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, priority DESC, creation_time);

-- Queries sent to modalities (POST /modalities/{id}/query) and their answers, kept in
-- the index so that /queries/{id} works from any process sharing it.
CREATE TABLE IF NOT EXISTS queries (
    id TEXT PRIMARY KEY,
    modality TEXT NOT NULL,
    level TEXT NOT NULL,
    query TEXT NOT NULL,                 -- JSON
    answers TEXT NOT NULL,               -- JSON list of DICOM JSON datasets (PS3.18 F.2)
    created REAL NOT NULL
);
"""
