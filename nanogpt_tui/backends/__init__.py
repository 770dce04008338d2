"""Where sessions run: Docker Engine hosts (`docker_backend`, the one module importing the docker SDK) and local
process trees (`local`). `base` holds what they share and imports neither."""
