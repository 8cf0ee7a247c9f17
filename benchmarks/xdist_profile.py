"""A pytest plugin for the xdist benchmark: registers bench<N> Hypothesis profiles (ci with N examples)."""
from hypothesis import settings

from properties import profiles

profiles.register()
for n in (50, 100, 150, 200, 300, 400):
    settings.register_profile(f"bench{n}", settings.get_profile("ci"), max_examples=n)
