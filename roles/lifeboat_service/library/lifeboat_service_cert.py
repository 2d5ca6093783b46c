#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: lifeboat_service_cert
short_description: A TLS certificate's expiry, with a warning threshold
version_added: 0.1.0
description:
  - PRIVATE to role lifeboat_service; not part of the collection's interface.
  - Seed 003's C(openssl x509 -in cert.pem -text | grep "Not After"), judged - reads the first certificate of a PEM
    file with C(openssl x509 -noout -enddate -subject) (an argument list, no shell), and fails when it has
    expired; fewer than O(warn_days) days left is a warning (and RV(state) C(warning)).
  - Reads only; check mode runs the same.
options:
  path:
    description: The certificate (PEM).
    type: path
    required: true
  warn_days:
    description: Fewer days left than this is a warning.
    type: int
    default: 30
  openssl:
    description: The openssl program.
    type: str
    default: openssl
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Check the site's certificate
  lifeboat_service_cert:
    path: /etc/letsencrypt/live/example.com/cert.pem
    warn_days: 21
'''

RETURN = r'''
cert_file:
  description: The certificate read.
  returned: always but on bad input
  type: str
not_after:
  description: The certificate's end of validity, UTC (ISO 8601).
  returned: success, and failure on an expired certificate
  type: str
days_left:
  description: Whole days left (negative once expired).
  returned: success, and failure on an expired certificate
  type: int
state:
  description: C(ok), C(warning) or C(expired).
  returned: success, and failure on an expired certificate
  type: str
subject:
  description: The certificate's subject, as openssl prints it.
  returned: success, and failure on an expired certificate
  type: str
'''

import math
import os
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type='path', required=True), warn_days=dict(type='int', default=30),
                           openssl=dict(type='str', default='openssl')),
        supports_check_mode=True,
    )
    path, warn_days = module.params['path'], module.params['warn_days']
    if not os.path.isfile(path):
        module.fail_json(msg='certificate %s does not exist; set lifeboat_service_cert_file to the PEM the service '
                             'serves' % path)
    openssl = module.get_bin_path(module.params['openssl'])
    if not openssl:
        module.fail_json(msg='%s is not installed on this host; install the openssl package' % module.params['openssl'])
    rc, out, err = module.run_command([openssl, 'x509', '-noout', '-enddate', '-subject', '-in', path])
    if rc != 0:
        module.fail_json(msg='%s is not a PEM certificate openssl can read: %s' % (path, ' '.join(err.split())[:200]))
    fields = dict(line.split('=', 1) for line in out.splitlines() if '=' in line)
    try:
        # openssl prints e.g. "notAfter=Mar  5 12:00:00 2027 GMT": always GMT.
        not_after = datetime.strptime(' '.join(fields['notAfter'].split()), '%b %d %H:%M:%S %Y GMT')
    except (KeyError, ValueError):
        module.fail_json(msg='openssl printed no end date for %s: %s' % (path, ' '.join(out.split())[:200]))
    not_after = not_after.replace(tzinfo=timezone.utc)
    seconds_left = (not_after - datetime.now(timezone.utc)).total_seconds()
    days_left = math.floor(seconds_left / 86400)
    state = 'expired' if seconds_left <= 0 else 'warning' if seconds_left < warn_days * 86400 else 'ok'
    result = dict(changed=False, cert_file=path, not_after=not_after.strftime('%Y-%m-%dT%H:%M:%SZ'), days_left=days_left,
                  state=state, subject=fields.get('subject', '').strip(), warn_days=warn_days)
    if state == 'expired':
        module.fail_json(msg='certificate %s expired on %s (%d days ago): renew it (certbot renew), then reload '
                             'the service' % (path, result['not_after'], -seconds_left // 86400), **result)
    if state == 'warning':
        module.warn('certificate %s expires on %s, in %d days (less than %d): renew it soon'
                    % (path, result['not_after'], days_left, warn_days))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
