"""Writing outputs (audioretrieval.files): two writers of one file never damage it for a reader, and
one output can be held by a single writer; a write that fails part-way (a full disk) names the file."""

import os
import threading

import forked
import h5py
import numpy as np
import pytest

from audioretrieval.files import HDF5Output, HeldByAnother, partial_files, sole_writer, write_text_atomically


def write_h5(path, value: int) -> None:
    with HDF5Output(path) as f:
        f["x"] = np.full(5000, value)


def test_two_writers_of_one_file_and_a_reader_never_meet_a_damaged_or_missing_file(tmp_path):
    h5, text = tmp_path / "out.h5", tmp_path / "out.txt"
    write_h5(h5, 0)
    write_text_atomically("0" * 5000, text)
    errors, bad_reads, reads = [], [], 0
    stop = threading.Event()

    def writer(value):
        try:
            for _ in range(60):
                write_h5(h5, value)
                write_text_atomically(str(value) * 5000, text)
        except Exception as exc:  # each writer's rename of its own partial file
            errors.append(exc)

    def reader():
        nonlocal reads
        while not stop.is_set():
            with h5py.File(h5, "r") as f:
                x = f["x"][:]
            content = text.read_text()
            reads += 1
            if len(x) != 5000 or len(set(x.tolist())) != 1 or len(content) != 5000 or len(set(content)) != 1:
                bad_reads.append((x[:3], content[:3]))

    threads = [threading.Thread(target=writer, args=(v,)) for v in (1, 2)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert errors == [] and bad_reads == [] and reads > 0
    assert not partial_files(h5) and not partial_files(text)


def test_a_second_writer_of_a_held_output_is_refused_naming_the_holder_until_it_lets_go(tmp_path):
    index = tmp_path / "index.h5"
    with sole_writer(index, "another `index` run"):
        with pytest.raises(HeldByAnother, match=rf"{index}: another `index` run \(process {os.getpid()}\) is writing"):
            with sole_writer(index, "another `index` run"):
                pass
    assert not index.with_name("index.h5.lock").exists()  # nothing left behind
    with sole_writer(index, "another `index` run"):  # released: the next run takes it
        pass


def test_a_checkpoint_that_does_not_fit_on_the_disk_is_named_with_its_cause_and_leaves_nothing(tmp_path):
    target = tmp_path / "best.pt"
    code = (
        "import torch; from audioretrieval.files import save_torch_atomically; "
        f"save_torch_atomically({{'w': torch.zeros(1_000_000)}}, {str(target)!r})"
    )
    result = forked.run(["-c", code], max_file_size=100_000)  # as a full disk: the write fails part-way
    assert result.returncode != 0
    assert f"WriteFailed: {target}: cannot be written: File too large (its partial file was removed)" in result.stderr
    assert "enforce fail" not in result.stderr.splitlines()[-1]
    assert not target.exists() and not partial_files(target)
