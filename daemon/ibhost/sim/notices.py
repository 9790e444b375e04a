"""IB's system notices, sent as errors with reqId -1: farms, connectivity, port reset."""

FARMS = {
    # code broken -> (farm, broken text, ok code, ok text)
    2103: ("usfarm", "Market data farm connection is broken:usfarm",
           2104, "Market data farm connection is OK:usfarm"),
    2105: ("ushmds", "HMDS data farm connection is broken:ushmds",
           2106, "HMDS data farm connection is OK:ushmds"),
    2157: ("secdefil", "Sec-def data farm connection is broken:secdefil",
           2158, "Sec-def data farm connection is OK:secdefil"),
}
TEXT_1100 = "Connectivity between IB and Trader Workstation has been lost."
TEXT_1101 = "Connectivity between IB and Trader Workstation has been restored - data lost."
TEXT_1102 = ("Connectivity between IB and Trader Workstation has been restored - data "
             "maintained. All data farms are connected: usfarm; ushmds; secdefil.")
TEXT_2110 = ("Connectivity between Trader Workstation and server is broken. "
             "It will be restored automatically.")
TEXT_1300 = ("TWS socket port has been reset and this connection is being dropped. "
             "Please reconnect on the new socket port : {port}")
TEXT_10197 = "No market data during competing live session"
