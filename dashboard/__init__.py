"""Real-time command center for community grid governance (网格化治理)."""

__version__ = "0.1.0"

# The pages' own components (dashboard.components): Dash serves this script with the
# framework's, because those classes are defined in this package.
_js_dist = [{"relative_package_path": "components/wall_components.js", "namespace": "dashboard"}]
