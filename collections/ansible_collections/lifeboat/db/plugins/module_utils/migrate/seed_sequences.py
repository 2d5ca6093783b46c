# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The seed module's `sequences` option (apply and migrate): each sequence's next value set from a
number or from the highest value of a column, after the files have run."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.migrate import seed


def sequence_specs(items):
    specs = []
    for number, item in enumerate(items or [], 1):
        keys = set(item or {})
        if not isinstance(item, dict) or not item.get('name') or len(keys & {'value', 'column'}) != 1 \
                or keys - {'name', 'value', 'column'}:
            raise LifeboatError('sequences item %d must be {name, value} or {name, column}, e.g. {name: facility_num, '
                                'value: 103} or {name: facility_num, column: d_facility.id}' % number)
        if 'value' in item and not isinstance(item['value'], int):
            try:
                item = dict(item, value=int(str(item['value'])))
            except ValueError:
                raise LifeboatError('sequences item %d (%s): value %r is not a whole number'
                                    % (number, item['name'], item['value']))
        specs.append(item)
    return specs


def set_sequences(conn, specs, actions):
    done = []
    for spec in specs:
        plan = seed.sequence_plan(conn, spec)
        if plan['changed']:
            seed.set_sequence(conn, plan)
            actions.append('set sequence %s: next value %d' % (plan['name'], plan['next_value']))
        done.append(plan)
    return done


def sequences_in_check_mode(conn, specs, actions):
    done = []
    for spec in specs:
        try:
            plan = seed.sequence_plan(conn, spec)
        except LifeboatError:
            # It may be created by a file this run would apply; say so rather than fail.
            done.append(dict(name=spec['name'], changed=True))
            actions.append('would set sequence %s once the files have run' % spec['name'])
            continue
        if plan['changed']:
            actions.append('would set sequence %s: next value %d' % (plan['name'], plan['next_value']))
        done.append(plan)
    return done
