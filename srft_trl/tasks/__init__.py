"""The small tasks shipped with srft-trl: `tiny_math` (integer arithmetic, for plumbing checks on a
random model) and `digit_chains` (running sums of digit chains, the testbed's task and the quickstart's,
on a pre-trained base). Each module makes its problems and their worked solutions."""
