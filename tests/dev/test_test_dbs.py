from dev.test_dbs import TEST_DBS, claim_test_db


def test_a_claimed_database_is_nobody_elses_until_given_back() -> None:
    first, held = claim_test_db()
    second, other = claim_test_db()
    try:
        assert first != second
        assert {first, second} <= set(TEST_DBS)
    finally:
        other.close()
    third, again = claim_test_db()  # the second one was given back: free again
    try:
        assert third == second
    finally:
        again.close()
        held.close()
