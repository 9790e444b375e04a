"""Contract handlers (reqContractDetails, reqSecDefOptParams) and the C12 reader
every request naming a contract shares.

Field positions follow ib_async 2.1.0 ``client.py`` (the sender of each request).
"""

from __future__ import annotations

import logging

from .clientstate import Client
from .env import Contracts
from .hours import trading_hours
from .messages import contract_data
from .protocol import Fields, In, Out
from .table import Routes
from .universe import OPTION_EXCHANGES, Listing, Query, option_expirations, option_strikes

log = logging.getLogger("ibhost.sim.contracts")

routes = Routes()

NOT_FOUND = "No security definition has been found for the request"


def read_contract(f: Fields) -> Query:
    """The C12 block: conId .. tradingClass."""
    return Query(
        conId=f.integer(), symbol=f.text(), secType=f.text(), lastTradeDate=f.text(),
        strike=f.number(), right=f.text(), multiplier=f.text(), exchange=f.text(),
        primaryExchange=f.text(), currency=f.text(), localSymbol=f.text(), tradingClass=f.text(),
    )


def resolve(env: Contracts, s: Client, req_id: int, q: Query) -> Listing | None:
    """Exactly one listing, or error 200 (not found / ambiguous) and None."""
    found = env.universe.match(q)
    if not found:
        s.error(req_id, 200, NOT_FOUND)
        return None
    if len(found) > 1:
        s.error(req_id, 200, f"The contract description specified for {q.describe()} is "
                             "ambiguous.")
        return None
    return found[0]


@routes(In.REQ_CONTRACT_DATA, "reqContractDetails", req_pos=2)
async def req_contract_details(env: Contracts, s: Client, fields: list[str]) -> None:
    f = Fields(fields, 2)
    req_id = f.integer()
    q = read_contract(f)
    q.includeExpired = f.flag()
    sec_id_type, sec_id = f.text(), f.text()
    if not q.secType and not q.conId:
        s.error(req_id, 321, "Error validating request.-'bc' : cause - Invalid security type -")
        return
    found = env.universe.match(q) if (q.symbol or q.conId or q.localSymbol) else []
    if not found:
        if sec_id_type or sec_id:
            log.info("secId lookups (%s=%s) are not simulated", sec_id_type, sec_id)
        s.error(req_id, 200, NOT_FOUND)
        return
    today = env.universe.today
    for lst in found:
        exchange = q.exchange.upper() if q.exchange else lst.exchange
        th = trading_hours(lst.hours, lst.timeZoneId, today)
        s.send(contract_data(s.st.version, req_id, lst, exchange, th))
    s.send([Out.CONTRACT_DATA_END, 1, req_id])


@routes(In.REQ_SEC_DEF_OPT_PARAMS, "reqSecDefOptParams", req_pos=1)
async def req_sec_def_opt_params(env: Contracts, s: Client, fields: list[str]) -> None:
    f = Fields(fields, 1)
    req_id = f.integer()
    und_symbol, fut_fop_exchange = f.text(), f.text()
    und_sec_type, und_con_id = f.text(), f.integer()
    universe = env.universe
    und = universe.by_conid(und_con_id) if und_con_id else None
    if und is None:
        matches = universe.match(Query(symbol=und_symbol, secType=und_sec_type or "STK",
                                       currency="USD"))
        und = matches[0] if len(matches) == 1 else None
    chain = [o for o in universe.all() if o.secType == "OPT" and und is not None
             and o.underConId == und.conId]
    if und is not None and chain and not fut_fop_exchange:
        exps = [e.strftime("%Y%m%d") for e in option_expirations(universe.today)]
        strikes = option_strikes(und.base_price)
        for ex in OPTION_EXCHANGES:
            s.send([Out.SECURITY_DEFINITION_OPTION_PARAMETER, req_id, ex, und.conId,
                    und.symbol, "100", len(exps), *exps, len(strikes), *strikes])
    s.send([Out.SECURITY_DEFINITION_OPTION_PARAMETER_END, req_id])
