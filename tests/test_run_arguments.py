"""ltau-md run's command line: -var / -log / -screen read as LAMMPS reads them."""

import pytest

from lammps_plugin.driver import run_stem, undefined_variable
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


@pytest.mark.parametrize("script, given, expected", [
    ("pair_style nequip ${model}\nfix u all ltau 10 ${artifact}\n", ["model"], (2, "artifact")),
    ("variable a equal 1  # ${zz} only in a comment\nprint \"${a} $b\"\n", [], (2, "b")),
    ("run 0 &\n  post ${x}\n", [], (1, "x")),  # a continued line is reported where it starts
    # defined anywhere, also inside quotes, also after the use (a loop may jump back)
    ('variable n equal 1\nif "${n} > 0" then "variable T equal 300" else "variable T equal 600"\nvelocity all create ${T} 1\n', [], None),
    ('run 100 every 10 "variable b equal step"\nprint "${b}"\n', [], None),
    ("label loop\nprint ${i}\nvariable i loop 3\nnext i\njump SELF loop\n", [], None),
    ("print $(step) ${T}\n", ["T"], None),  # $(...) is an expression, not a variable
    # no verdict where other files or Python text may define or hide variables
    ("include settings.in\nrun ${n}\n", [], None),
    ('python f here """\nx = "$5"\n"""\n', [], None),
])  # fmt: skip
def test_undefined_variables_are_found_before_lammps_starts_and_only_where_certain(script, given, expected):
    assert undefined_variable(script, given) == expected


def test_run_names_are_one_word_that_lammps_print_leaves_alone():
    assert run_stem("in.heating_ramp", None) == "heating_ramp" and run_stem("x/run1.in", None) == "run1"
    assert run_stem("in.x", 'log.my $x "q') == "my__x__q"  # $ would be substituted by print, " would end it
