"""The build agent: polls the server for jobs and builds them in rootless Podman containers."""
