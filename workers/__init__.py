"""The diffusion worker and its hosts: the only place torch and diffusers are imported.

Empty until the /imagine issue; see ARCHITECTURE.md.
"""
