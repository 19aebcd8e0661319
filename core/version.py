"""Version numbers: ours, and the Orthanc API level we implement."""

__version__ = "0.1.0"

# Clients gate features on /system's "Version" and "ApiVersion": we answer with the
# Orthanc release whose REST API and DICOM behaviour we reproduce.
ORTHANC_COMPATIBLE_VERSION = "1.10.1"
ORTHANC_API_VERSION = 16

# PS3.7 D.3.3.2: identifies the implementation in A-ASSOCIATE and file meta.
# A 2.25 UID derived from uuid5(NAMESPACE_URL, "isengard") — fixed forever.
IMPLEMENTATION_CLASS_UID = "2.25.125306117828492564315521817166219941973"
IMPLEMENTATION_VERSION_NAME = "ISENGARD_010"
