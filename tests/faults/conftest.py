"""The uninterrupted reference run every kill test is compared with (one per session)."""

import pytest

from .lib import TINY, snakemake, temporaries, write_config


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """The tiny recipe run once from scratch, without interruption, in a folder whose name has a space."""
    workdir = tmp_path_factory.mktemp("reference run")
    write_config(workdir, TINY)
    snakemake(workdir)
    assert not temporaries(workdir), "an uninterrupted run left temporary files"
    return workdir
