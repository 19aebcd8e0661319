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
);
CREATE INDEX IF NOT EXISTS attached_files_uuid ON attached_files(uuid);

CREATE TABLE IF NOT EXISTS metadata (
    internal_id INTEGER NOT NULL REFERENCES resources(internal_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (internal_id, name)
);

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
"""
