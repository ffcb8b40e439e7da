"""ltau-md run's command line: -var / -log / -screen read as LAMMPS reads them."""

import pytest

from ltau_app.commands.run import parse_lammps_args
from ltau_md.errors import LtauError


def test_a_var_takes_its_name_and_first_value_whatever_they_are_then_words_up_to_the_next_flag():
    variables, log, screen = parse_lammps_args(["-var", "dT", "-50", "-v", "T", "300", "600", "-log", "x.log", "-sc", "none"])
    assert variables == [("dT", ["-50"]), ("T", ["300", "600"])] and log == "x.log" and screen == "none"


def test_a_mistyped_flag_after_a_var_is_an_error_not_one_more_value():
    with pytest.raises(LtauError, match="'-vra': unknown argument"):
        parse_lammps_args(["-var", "T", "300", "-vra", "x", "1"])
    with pytest.raises(LtauError, match="give a name and at least one value"):
        parse_lammps_args(["-var", "T"])
