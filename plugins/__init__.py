"""First-party Isengard plugins. Each sub-package is a plugin registered through the
``isengard.plugins`` entry-point group, importing only ``isengard_sdk``."""
