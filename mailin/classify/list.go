package classify

import (
	"strings"

	"github.com/deskd/deskd/mailin/parse"
)

// listHeaders mark mail distributed by a list or bulk sender: RFC 2919 List-Id, RFC 2369
// List-Post/-Unsubscribe/-Subscribe/-Help/-Owner/-Archive, and the pre-RFC fields of ezmlm
// (Mailing-List) and SmartList/Mailman (X-Mailing-List, X-BeenThere). List-Unsubscribe alone
// counts too: newsletters and marketing mail carry it (RFC 8058 one-click unsubscribe), and an
// acknowledgement to them would be mail to a machine.
var listHeaders = []string{
	"List-Id", "List-Post", "List-Unsubscribe", "List-Subscribe", "List-Help", "List-Owner",
	"List-Archive", "Mailing-List", "X-Mailing-List", "X-BeenThere",
}

// hasListHeader reports whether m carries any list header field.
func hasListHeader(m *parse.Message) bool {
	_, ok := listHeader(m)
	return ok
}

func listHeader(m *parse.Message) (string, bool) {
	for _, h := range listHeaders {
		if hasHeader(m, h) {
			return h, true
		}
	}
	return "", false
}

// classifyList recognises list and bulk mail.
func classifyList(m *parse.Message) (Result, bool) {
	if h, ok := listHeader(m); ok {
		return Result{Class: ClassList, Reason: h + " header"}, true
	}
	if strings.EqualFold(header(m, "Precedence"), "list") {
		return Result{Class: ClassList, Reason: "Precedence: list"}, true
	}
	return Result{}, false
}
